// CUDA kernels of upfirdn2d.cpp: one thread per output (forward) or input (backward) element, both
// as gathers with the same index algebra as the CPU loops.
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <ATen/AccumulateType.h>

template <typename scalar_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ k,
                                 scalar_t* __restrict__ o, int64_t planes, int64_t h, int64_t w, int64_t kh,
                                 int64_t kw, int64_t oh, int64_t ow, int64_t up, int64_t down, int64_t pad0) {
  const int64_t n = planes * oh * ow;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)blockDim.x * gridDim.x) {
    const int64_t ox = i % ow, oy = (i / ow) % oh, p = i / (ow * oh);
    const scalar_t* xp = x + p * h * w;
    using acc_t = at::acc_type<scalar_t, true>;
    acc_t acc = 0;
    for (int64_t ky = 0; ky < kh; ++ky) {
      const int64_t uy = oy * down + ky - pad0;
      if (uy < 0 || uy % up != 0 || uy / up >= h) continue;
      for (int64_t kx = 0; kx < kw; ++kx) {
        const int64_t ux = ox * down + kx - pad0;
        if (ux < 0 || ux % up != 0 || ux / up >= w) continue;
        acc += static_cast<acc_t>(xp[(uy / up) * w + ux / up]) * static_cast<acc_t>(k[(kh - 1 - ky) * kw + kw - 1 - kx]);
      }
    }
    o[i] = static_cast<scalar_t>(acc);
  }
}

template <typename scalar_t>
__global__ void upfirdn2d_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ k,
                                          scalar_t* __restrict__ gx, int64_t planes, int64_t h, int64_t w,
                                          int64_t kh, int64_t kw, int64_t oh, int64_t ow, int64_t up,
                                          int64_t down, int64_t pad0) {
  const int64_t n = planes * h * w;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)blockDim.x * gridDim.x) {
    const int64_t ix = i % w, iy = (i / w) % h, p = i / (w * h);
    const scalar_t* gp = g + p * oh * ow;
    const int64_t uy = iy * up + pad0, ux = ix * up + pad0;
    using acc_t = at::acc_type<scalar_t, true>;
    acc_t acc = 0;
    for (int64_t ky = 0; ky < kh; ++ky) {
      const int64_t t = uy - ky;
      if (t < 0 || t % down != 0 || t / down >= oh) continue;
      for (int64_t kx = 0; kx < kw; ++kx) {
        const int64_t s = ux - kx;
        if (s < 0 || s % down != 0 || s / down >= ow) continue;
        acc += static_cast<acc_t>(gp[(t / down) * ow + s / down]) * static_cast<acc_t>(k[(kh - 1 - ky) * kw + kw - 1 - kx]);
      }
    }
    gx[i] = static_cast<scalar_t>(acc);
  }
}

static int blocks_for(int64_t n) { return (int)std::min<int64_t>((n + 255) / 256, 65535); }

torch::Tensor upfirdn2d_cuda(const torch::Tensor& x_in, const torch::Tensor& k_in, int64_t up, int64_t down,
                             int64_t pad0, int64_t pad1) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  auto x = x_in.contiguous();
  auto k = k_in.contiguous();
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), kh = k.size(0), kw = k.size(1);
  const int64_t oh = (h * up + pad0 + pad1 - kh) / down + 1, ow = (w * up + pad0 + pad1 - kw) / down + 1;
  TORCH_CHECK(oh > 0 && ow > 0, "upfirdn2d: the output would be empty");
  auto out = torch::empty({b, c, oh, ow}, x.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cuda", [&] {
    upfirdn2d_kernel<scalar_t><<<blocks_for(out.numel()), 256, 0, stream>>>(
        x.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), b * c, h, w, kh, kw, oh, ow,
        up, down, pad0);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

torch::Tensor upfirdn2d_backward_cuda(const torch::Tensor& grad_in, const torch::Tensor& k_in, int64_t in_h,
                                      int64_t in_w, int64_t up, int64_t down, int64_t pad0, int64_t pad1) {
  const c10::cuda::CUDAGuard guard(grad_in.device());
  auto g = grad_in.contiguous();
  auto k = k_in.contiguous();
  const int64_t b = g.size(0), c = g.size(1), oh = g.size(2), ow = g.size(3), kh = k.size(0), kw = k.size(1);
  auto gx = torch::empty({b, c, in_h, in_w}, g.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "upfirdn2d_backward_cuda", [&] {
    upfirdn2d_backward_kernel<scalar_t><<<blocks_for(gx.numel()), 256, 0, stream>>>(
        g.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), b * c, in_h, in_w, kh, kw, oh,
        ow, up, down, pad0);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return gx;
}
