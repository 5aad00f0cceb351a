package dev.tune4j.train;

import dev.tune4j.quant.Codebooks;
import dev.tune4j.tensor.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * bitsandbytes' AdamW8bit: m stored as uint8 codes of the signed dynamic map, v of the unsigned one, blockwise (256 values
 * per block) with one fp32 absmax per block; each step dequantizes, applies the same update as {@link AdamW}, and
 * requantizes with fresh absmax (nearest code). Tensors under 4,096 elements keep fp32 states, as bitsandbytes does.
 * About 2.03 bytes of state per parameter instead of 8. The 8-bit state always lives in host memory and each step works on
 * host copies (offloaded by construction; aliases on the CPU build).
 */
public final class AdamW8bit implements Optimizer {
    public static final int BLOCK = 256, MIN_8BIT_SIZE = 4096;

    private final List<AdamW.Param> params;
    private final double beta1, beta2, eps;
    private final AdamW small;                 // the fp32 path for small tensors
    private final List<Integer> bigIndex = new ArrayList<>();
    private final List<Tensor> m8 = new ArrayList<>(), v8 = new ArrayList<>(), mAbs = new ArrayList<>(), vAbs = new ArrayList<>();
    private final Tensor signed, unsigned, signedMid, unsignedMid;
    private long step;

    public AdamW8bit(List<AdamW.Param> params, double beta1, double beta2, double eps) {
        this.params = List.copyOf(params);
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        var smallParams = new ArrayList<AdamW.Param>();
        for (int i = 0; i < params.size(); i++) {
            Tensor p = params.get(i).tensor();
            if (p.numel() < MIN_8BIT_SIZE) {
                smallParams.add(params.get(i));
                continue;
            }
            bigIndex.add(i);
            long blocks = (p.numel() + BLOCK - 1) / BLOCK;
            // zero state: code of 0 in each map (127 signed, 0 unsigned), absmax 0
            m8.add(Tensors.escape(() -> torch.full(new long[]{blocks * BLOCK}, new Scalar(127)).to(torch.ScalarType.Byte)));
            v8.add(Tensors.escape(() -> torch.zeros(new long[]{blocks * BLOCK}).to(torch.ScalarType.Byte)));
            mAbs.add(Tensors.escape(() -> torch.zeros(blocks)));
            vAbs.add(Tensors.escape(() -> torch.zeros(blocks)));
        }
        this.small = new AdamW(smallParams, beta1, beta2, eps, true);
        float[] s = Codebooks.dynamicMap(true), u = Codebooks.dynamicMap(false);
        this.signed = Tensors.escape(() -> Tensors.floats(s, 256));
        this.unsigned = Tensors.escape(() -> Tensors.floats(u, 256));
        this.signedMid = Tensors.escape(() -> Tensors.floats(mid(s), 255));
        this.unsignedMid = Tensors.escape(() -> Tensors.floats(mid(u), 255));
    }

    private static float[] mid(float[] t) {
        float[] m = new float[t.length - 1];
        for (int i = 0; i < m.length; i++) m[i] = (t[i] + t[i + 1]) / 2f;
        return m;
    }

    @Override
    public void step(double lr) {
        step++;
        small.step(lr);
        double bc1 = 1 - Math.pow(beta1, step), bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
        try (NoGradGuard ng = new NoGradGuard()) {
            for (int k = 0; k < bigIndex.size(); k++) try (PointerScope s = new PointerScope()) { // temporaries die with their parameter's update
                AdamW.Param param = params.get(bigIndex.get(k));
                Tensor device = param.tensor(), grad = device.grad();
                if (!grad.defined()) continue;
                Tensor p = AdamW.host(device), g = AdamW.host(grad);
                long n = p.numel(), blocks = mAbs.get(k).size(0), padded = blocks * BLOCK;
                Tensor gf = pad(g.reshape(-1).to(torch.ScalarType.Float), padded).view(blocks, BLOCK);       // (blocks, 256)
                Tensor m = dequant(m8.get(k), mAbs.get(k), signed, blocks).mul(new Scalar(beta1)).add(gf, new Scalar(1 - beta1));
                Tensor v = dequant(v8.get(k), vAbs.get(k), unsigned, blocks).mul(new Scalar(beta2)).addcmul_(gf, gf, new Scalar(1 - beta2));
                p.mul_(new Scalar(1 - lr * param.weightDecay()));
                Tensor update = m.div(v.sqrt().div(new Scalar(bc2Sqrt)).add(new Scalar(eps))).mul(new Scalar(lr / bc1)); // (blocks, 256)
                p.sub_(update.view(-1).narrow(0, 0, n).view(Tensors.shape(p)).to(p.scalar_type().intern()));
                device.copy_(p); // a no-op on the CPU build, where p is the parameter itself
                requant(m, m8.get(k), mAbs.get(k), signedMid);
                requant(v, v8.get(k), vAbs.get(k), unsignedMid);
            }
        }
    }

    private static Tensor pad(Tensor flat, long to) {
        if (flat.size(0) == to) return flat;
        return torch.cat(new org.bytedeco.pytorch.TensorVector(flat, torch.zeros(to - flat.size(0))), 0);
    }

    private static Tensor dequant(Tensor codes, Tensor absmax, Tensor map, long blocks) {
        return map.index_select(0, codes.to(torch.ScalarType.Long)).view(blocks, BLOCK).mul(absmax.view(blocks, 1)); // (blocks, 256)
    }

    /** Fresh absmax per block, then the nearest code (ties to the lower code) of x / absmax. */
    private static void requant(Tensor x, Tensor codes, Tensor absmax, Tensor mid) {
        Tensor amax = x.abs().amax(new long[]{1}, false);                                               // (blocks)
        Tensor scaled = x.div(amax.clamp_min(new Scalar(1e-38)).view(-1, 1)).clamp(new org.bytedeco.pytorch.ScalarOptional(new Scalar(-1.0)), new org.bytedeco.pytorch.ScalarOptional(new Scalar(1.0)));
        Tensor q = torch.bucketize(scaled.contiguous(), mid, false, false);                              // count of midpoints < y
        codes.copy_(q.view(-1).to(torch.ScalarType.Byte));
        absmax.copy_(amax);
    }

    @Override
    public void zeroGrad() {
        small.zeroGrad();
        try (PointerScope s = new PointerScope()) {
            for (int i : bigIndex) if (params.get(i).tensor().grad().defined()) params.get(i).tensor().mutable_grad().reset();
        }
    }

    @Override
    public long steps() {
        return step;
    }

    @Override
    public void setSteps(long steps) {
        step = steps;
        small.setSteps(steps);
    }

    /** Bytes of optimizer state (8-bit codes + absmax, fp32 moments for the small tensors). */
    public long stateBytes() {
        long b = 0;
        for (int k = 0; k < m8.size(); k++) b += m8.get(k).numel() + v8.get(k).numel() + 4 * (mAbs.get(k).numel() + vAbs.get(k).numel());
        for (Tensor t : small.expAvg()) b += 8 * t.numel();
        return b;
    }

    @Override
    public LinkedHashMap<String, Tensor> state() {
        var st = new LinkedHashMap<String, Tensor>();
        small.state().forEach((k, v) -> st.put("small." + k, v));
        for (int k = 0; k < bigIndex.size(); k++) {
            int i = bigIndex.get(k);
            st.put("m8." + i, m8.get(k));
            st.put("m8_absmax." + i, mAbs.get(k));
            st.put("v8." + i, v8.get(k));
            st.put("v8_absmax." + i, vAbs.get(k));
        }
        return st;
    }

    @Override
    public void close() {
        small.close();
        for (List<Tensor> l : List.of(m8, v8, mAbs, vAbs)) l.forEach(Tensor::close);
        for (Tensor t : new Tensor[]{signed, unsigned, signedMid, unsignedMid}) t.close();
    }
}
