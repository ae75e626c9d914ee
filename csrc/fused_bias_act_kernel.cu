// CUDA kernels of fused_bias_act.cpp (compiled only when the extension is built with CUDA).
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

template <typename scalar_t>
__global__ void bias_act_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias,
                                scalar_t* __restrict__ out, int64_t n, int64_t channels, int64_t inner,
                                scalar_t scale, scalar_t neg_scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)blockDim.x * gridDim.x) {
    const scalar_t v = x[i] + bias[(i / inner) % channels];
    out[i] = v > 0 ? v * scale : v * neg_scale;
  }
}

template <typename scalar_t>
__global__ void bias_act_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ out,
                                         scalar_t* __restrict__ result, int64_t n, scalar_t scale,
                                         scalar_t neg_scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)blockDim.x * gridDim.x)
    result[i] = out[i] > 0 ? grad[i] * scale : grad[i] * neg_scale;
}

static int blocks_for(int64_t n) { return (int)std::min<int64_t>((n + 255) / 256, 65535); }

torch::Tensor fused_bias_act_cuda(const torch::Tensor& x_in, const torch::Tensor& bias_in, double slope,
                                  double scale) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  auto x = x_in.contiguous();
  auto bias = bias_in.contiguous();
  auto out = torch::empty_like(x);
  const int64_t n = x.numel(), channels = x.size(1), inner = n / (x.size(0) * channels);
  if (n == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fused_bias_act_cuda", [&] {
    bias_act_kernel<scalar_t><<<blocks_for(n), 256, 0, stream>>>(
        x.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n, channels, inner,
        static_cast<scalar_t>(scale), static_cast<scalar_t>(slope * scale));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

torch::Tensor fused_bias_act_backward_cuda(const torch::Tensor& grad_in, const torch::Tensor& out_in, double slope,
                                           double scale) {
  const c10::cuda::CUDAGuard guard(grad_in.device());
  auto grad = grad_in.contiguous();
  auto out = out_in.contiguous();
  auto result = torch::empty_like(grad);
  const int64_t n = grad.numel();
  if (n == 0) return result;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "fused_bias_act_backward_cuda", [&] {
    bias_act_backward_kernel<scalar_t><<<blocks_for(n), 256, 0, stream>>>(
        grad.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), result.data_ptr<scalar_t>(), n,
        static_cast<scalar_t>(scale), static_cast<scalar_t>(slope * scale));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return result;
}
