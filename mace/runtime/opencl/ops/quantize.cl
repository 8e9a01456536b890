/* FakeQuantize: y = (clamp(rint(x * inv_scale[c]) + zp[c], QMIN, QMAX) - dzp[c]) * dscale[c]
 * (ONNX QuantizeLinear then DequantizeLinear; rint rounds half to even; the multiply by the
 * inverse scale is the same math as the fused epilogue, FAKEQ in common.h, so fused and unfused
 * results are bit-identical). */

/* fake_quantize: per channel. The tensor is seen as (outer, C, S) around the quantization axis;
 * p holds (inv scale, zp, dscale, dzp) per channel. One work item per element, gws = (N). */
__kernel void fake_quantize(__global const store_t* restrict x, __global const float4* restrict p,
                            __global store_t* restrict y, int C, int S, int N) {
    const int i = get_global_id(0);
    if (i >= N) return;
    const float4 q = p[(i / S) % C];
    float v = clamp(rint(LOAD(x, i) * q.x) + q.y, (float)QMIN, (float)QMAX);
    STORE(y, i, (v - q.w) * q.z);
}

#ifdef FQ
/* fake_quantize4: per tensor (-DFQ), four elements per work item, the parameters as arguments
 * (FQ_ARGS). gws = (ceil(N / 4)); the last item does the tail. Also runs in place (x == y: each
 * item reads its elements before writing them), after a conv variant without the fused epilogue. */
__kernel void fake_quantize4(__global const store_t* x, __global store_t* y, int N FQ_ARGS) {
    const int i = get_global_id(0);
    if (4 * i + 3 < N) {
        STORE4(y, i, FAKEQ(LOAD4(x, i)));
    } else {
        for (int k = 4 * i; k < N; k++) STORE(y, k, FAKEQ(LOAD(x, k)));
    }
}
#endif
