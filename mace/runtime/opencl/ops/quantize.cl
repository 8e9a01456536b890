/* FakeQuantize: y = (clamp(rint(x / scale[c]) + zp[c], QMIN, QMAX) - dzp[c]) * dscale[c]
 * (ONNX QuantizeLinear then DequantizeLinear; rint rounds half to even). The tensor is seen as
 * (outer, C, S) around the quantization axis (C = 1 per tensor); p holds (scale, zp, dscale,
 * dzp) per channel. One work item per element, gws = (N). */
__kernel void fake_quantize(__global const store_t* restrict x, __global const float4* restrict p,
                            __global store_t* restrict y, int C, int S, int N) {
    const int i = get_global_id(0);
    if (i >= N) return;
    const float4 q = p[(i / S) % C];
    float v = clamp(rint(LOAD(x, i) / q.x) + q.y, (float)QMIN, (float)QMAX);
    STORE(y, i, (v - q.w) * q.z);
}
