// upfirdn2d: upsample by zero insertion, pad (negative = crop), FIR filter, downsample -- one pass,
// no intermediate upsampled or padded tensor. Semantics match gan_partseg.models.ops.upfirdn2d:
//   out[oy, ox] = sum_{ky, kx} K[kh-1-ky, kw-1-kx] * U[oy*down + ky - pad0, ox*down + kx - pad0]
// where U is the input upsampled by zero insertion (U[u] = x[u / up] when u % up == 0).
// The backward is the adjoint, computed as a gather (no atomics) so CPU and CUDA share its form.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#ifdef WITH_CUDA
torch::Tensor upfirdn2d_cuda(const torch::Tensor& x, const torch::Tensor& k, int64_t up, int64_t down,
                             int64_t pad0, int64_t pad1);
torch::Tensor upfirdn2d_backward_cuda(const torch::Tensor& grad, const torch::Tensor& k, int64_t in_h,
                                      int64_t in_w, int64_t up, int64_t down, int64_t pad0, int64_t pad1);
#endif

namespace {

int64_t out_size(int64_t in, int64_t k, int64_t up, int64_t down, int64_t pad0, int64_t pad1) {
  return (in * up + pad0 + pad1 - k) / down + 1;
}

void check(const torch::Tensor& x, const torch::Tensor& k, int64_t up, int64_t down) {
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be (B, C, H, W), got ", x.sizes());
  TORCH_CHECK(k.dim() == 2, "upfirdn2d: kernel must be (kh, kw), got ", k.sizes());
  TORCH_CHECK(up >= 1 && down >= 1, "upfirdn2d: up and down must be >= 1");
  TORCH_CHECK(x.scalar_type() == k.scalar_type(), "upfirdn2d: x and kernel must share a dtype");
}

// out (oy) <- input (iy) taps: iy*up == oy*down + ky - pad0, 0 <= ky < kh
template <typename scalar_t>
void forward_plane(const scalar_t* x, const scalar_t* k, scalar_t* o, int64_t h, int64_t w, int64_t kh,
                   int64_t kw, int64_t oh, int64_t ow, int64_t up, int64_t down, int64_t pad0) {
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t ox = 0; ox < ow; ++ox) {
      scalar_t acc = 0;
      for (int64_t ky = 0; ky < kh; ++ky) {
        const int64_t uy = oy * down + ky - pad0;
        if (uy < 0 || uy % up != 0 || uy / up >= h) continue;
        const scalar_t* row = x + (uy / up) * w;
        const scalar_t* krow = k + (kh - 1 - ky) * kw;
        for (int64_t kx = 0; kx < kw; ++kx) {
          const int64_t ux = ox * down + kx - pad0;
          if (ux < 0 || ux % up != 0 || ux / up >= w) continue;
          acc += row[ux / up] * krow[kw - 1 - kx];
        }
      }
      o[oy * ow + ox] = acc;
    }
  }
}

// grad_x[iy, ix] = sum over taps that read x[iy, ix]: oy*down + ky - pad0 == iy*up
template <typename scalar_t>
void backward_plane(const scalar_t* g, const scalar_t* k, scalar_t* gx, int64_t h, int64_t w, int64_t kh,
                    int64_t kw, int64_t oh, int64_t ow, int64_t up, int64_t down, int64_t pad0) {
  for (int64_t iy = 0; iy < h; ++iy) {
    for (int64_t ix = 0; ix < w; ++ix) {
      scalar_t acc = 0;
      const int64_t uy = iy * up + pad0, ux = ix * up + pad0;
      for (int64_t ky = 0; ky < kh; ++ky) {
        const int64_t t = uy - ky;  // = oy * down
        if (t < 0 || t % down != 0 || t / down >= oh) continue;
        const scalar_t* grow = g + (t / down) * ow;
        const scalar_t* krow = k + (kh - 1 - ky) * kw;
        for (int64_t kx = 0; kx < kw; ++kx) {
          const int64_t s = ux - kx;
          if (s < 0 || s % down != 0 || s / down >= ow) continue;
          acc += grow[s / down] * krow[kw - 1 - kx];
        }
      }
      gx[iy * w + ix] = acc;
    }
  }
}

}  // namespace

torch::Tensor upfirdn2d(const torch::Tensor& x_in, const torch::Tensor& k_in, int64_t up, int64_t down,
                        int64_t pad0, int64_t pad1) {
  check(x_in, k_in, up, down);
#ifdef WITH_CUDA
  if (x_in.is_cuda()) return upfirdn2d_cuda(x_in, k_in, up, down, pad0, pad1);
#endif
  TORCH_CHECK(x_in.device().is_cpu(), "upfirdn2d: this build has no CUDA kernels");
  auto x = x_in.contiguous();
  auto k = k_in.contiguous();
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), kh = k.size(0), kw = k.size(1);
  const int64_t oh = out_size(h, kh, up, down, pad0, pad1), ow = out_size(w, kw, up, down, pad0, pad1);
  TORCH_CHECK(oh > 0 && ow > 0, "upfirdn2d: the output would be empty");
  auto out = torch::empty({b, c, oh, ow}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upfirdn2d_cpu", [&] {
    const scalar_t* px = x.data_ptr<scalar_t>();
    const scalar_t* pk = k.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    at::parallel_for(0, b * c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p)
        forward_plane<scalar_t>(px + p * h * w, pk, po + p * oh * ow, h, w, kh, kw, oh, ow, up, down, pad0);
    });
  });
  return out;
}

torch::Tensor upfirdn2d_backward(const torch::Tensor& grad_in, const torch::Tensor& k_in, int64_t in_h,
                                 int64_t in_w, int64_t up, int64_t down, int64_t pad0, int64_t pad1) {
  check(grad_in, k_in, up, down);
#ifdef WITH_CUDA
  if (grad_in.is_cuda()) return upfirdn2d_backward_cuda(grad_in, k_in, in_h, in_w, up, down, pad0, pad1);
#endif
  auto g = grad_in.contiguous();
  auto k = k_in.contiguous();
  const int64_t b = g.size(0), c = g.size(1), oh = g.size(2), ow = g.size(3), kh = k.size(0), kw = k.size(1);
  TORCH_CHECK(oh == out_size(in_h, kh, up, down, pad0, pad1) && ow == out_size(in_w, kw, up, down, pad0, pad1),
              "upfirdn2d_backward: grad size does not match the forward");
  auto gx = torch::empty({b, c, in_h, in_w}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "upfirdn2d_backward_cpu", [&] {
    const scalar_t* pg = g.data_ptr<scalar_t>();
    const scalar_t* pk = k.data_ptr<scalar_t>();
    scalar_t* px = gx.data_ptr<scalar_t>();
    at::parallel_for(0, b * c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p)
        backward_plane<scalar_t>(pg + p * oh * ow, pk, px + p * in_h * in_w, in_h, in_w, kh, kw, oh, ow, up, down,
                                 pad0);
    });
  });
  return gx;
}
