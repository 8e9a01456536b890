#!/usr/bin/env bash
# The benchmarks on an NVIDIA GPU through NVIDIA's OpenCL driver, PoCL beside it.
#   bash benchmarks/run_nvidia.sh [portability|startup|cross|tuning|torch|profile|workflow|cmdbuf|variants|winograd|all]   (results in $OUT or ./out)
# (portability: the op tests, the five test models and the portability tests on NVIDIA's driver,
#  and benchmarks/implementations.py's table for it)
# (winograd: only when named; variants times every Conv variant, Winograd ones included)
# The NVIDIA ICD is installed but not registered on the lent machine: register it (and PoCL)
# in a private vendors directory.
set -u
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT" /tmp/icd
echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd
cp /etc/OpenCL/vendors/*.icd /tmp/icd/ 2>/dev/null
export OCL_ICD_VENDORS=/tmp/icd
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
what=${1:-all}
$PY -m mace devices --json > "$OUT/devices.json" 2>> "$OUT/log.txt"
cat "$OUT/devices.json"
run() { echo "== $*" >> "$OUT/log.txt"; "$@" 2>> "$OUT/log.txt"; }
case $what in portability|all)
  MACE_DEVICE=NVIDIA MACE_TEST_EXPECT_DEVICE=NVIDIA run $PY -m pytest -q -p no:cacheprovider tests/ops tests/test_models.py \
      tests/test_portability.py > "$OUT/tests_nvidia.txt"
  tail -5 "$OUT/tests_nvidia.txt"
  run $PY benchmarks/implementations.py --only nvidia > "$OUT/implementations_nvidia.json" ;; esac
case $what in startup|all)
  run $PY benchmarks/startup.py --device NVIDIA --models mobilenet_v2,resnet18 > "$OUT/startup_nvidia.json" ;; esac
case $what in cross|all)
  run $PY benchmarks/cross_device.py --a Portable --b NVIDIA > "$OUT/cross_device.json" ;; esac
case $what in tuning|all)
  run $PY benchmarks/tuning.py --device NVIDIA --models mobilenet_v2,resnet18,efficientnet_lite0 > "$OUT/tuning_nvidia.json" ;; esac
case $what in torch|all)
  run $PY benchmarks/torch_gpu.py --device NVIDIA --tune > "$OUT/torch_gpu.json" ;; esac
case $what in profile|all)
  run $PY benchmarks/op_profile.py --device NVIDIA --variants cpu > "$OUT/op_profile_cpu_style.json"
  run $PY benchmarks/op_profile.py --device NVIDIA > "$OUT/op_profile_default.json" ;; esac
case $what in variants|all)
  run $PY benchmarks/conv_variants.py --device NVIDIA --batch 1 > "$OUT/conv_variants_b1.json"
  run $PY benchmarks/conv_variants.py --device NVIDIA --batch 32 > "$OUT/conv_variants_b32.json" ;; esac
case $what in winograd)
  run $PY benchmarks/winograd.py --device NVIDIA > "$OUT/winograd_nvidia.json" ;; esac
case $what in cmdbuf|all)
  run $PY benchmarks/command_buffer.py --device NVIDIA > "$OUT/command_buffer_nvidia.json" ;; esac
case $what in workflow|all)
  run $PY benchmarks/workflow_mobilenet.py /tmp/mbv2-workflow --target-socs nvidia --run > "$OUT/workflow.txt"
  cp /tmp/mbv2-workflow/report/report.md /tmp/mbv2-workflow/report/report.html "$OUT/" 2>/dev/null ;; esac
tail -40 "$OUT/log.txt"
