// Fused bias + leaky ReLU + gain: out = leaky_relu(x + bias[c], slope) * scale, in one pass.
// CPU implementation here; the CUDA one (fused_bias_act_kernel.cu) is compiled in when the
// extension is built with CUDA (WITH_CUDA defined).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#ifdef WITH_CUDA
torch::Tensor fused_bias_act_cuda(const torch::Tensor& x, const torch::Tensor& bias, double slope, double scale);
torch::Tensor fused_bias_act_backward_cuda(const torch::Tensor& grad, const torch::Tensor& out, double slope,
                                           double scale);
#endif

namespace {

void check_inputs(const torch::Tensor& x, const torch::Tensor& bias) {
  TORCH_CHECK(x.dim() >= 2, "fused_bias_act: x must be (B, C, ...), got ", x.dim(), " dims");
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == x.size(1), "fused_bias_act: bias must be (C,) with C = ",
              x.size(1), ", got ", bias.sizes());
  TORCH_CHECK(x.scalar_type() == bias.scalar_type(), "fused_bias_act: x and bias must share a dtype");
  TORCH_CHECK(x.device() == bias.device(), "fused_bias_act: x and bias must be on one device");
}

}  // namespace

torch::Tensor fused_bias_act(const torch::Tensor& x_in, const torch::Tensor& bias_in, double slope, double scale) {
  check_inputs(x_in, bias_in);
#ifdef WITH_CUDA
  if (x_in.is_cuda()) return fused_bias_act_cuda(x_in, bias_in, slope, scale);
#endif
  TORCH_CHECK(x_in.device().is_cpu(), "fused_bias_act: this build has no CUDA kernels");
  auto x = x_in.contiguous();
  auto bias = bias_in.contiguous();
  auto out = torch::empty_like(x);
  const int64_t channels = x.size(1);
  const int64_t inner = x.numel() / (x.size(0) * channels);  // elements per (batch, channel) plane
  const int64_t planes = x.size(0) * channels;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_bias_act_cpu", [&] {
    const scalar_t* px = x.data_ptr<scalar_t>();
    const scalar_t* pb = bias.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    const scalar_t s = static_cast<scalar_t>(scale), ns = static_cast<scalar_t>(slope * scale);
    at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t b = pb[p % channels];
        const scalar_t* src = px + p * inner;
        scalar_t* dst = po + p * inner;
        for (int64_t i = 0; i < inner; ++i) {
          const scalar_t v = src[i] + b;
          dst[i] = v > 0 ? v * s : v * ns;
        }
      }
    });
  });
  return out;
}

// grad_x = grad * scale where out > 0, grad * slope * scale elsewhere (out and x + bias share their sign).
torch::Tensor fused_bias_act_backward(const torch::Tensor& grad_in, const torch::Tensor& out_in, double slope,
                                      double scale) {
  TORCH_CHECK(grad_in.sizes() == out_in.sizes(), "fused_bias_act_backward: grad and out shapes differ");
#ifdef WITH_CUDA
  if (grad_in.is_cuda()) return fused_bias_act_backward_cuda(grad_in, out_in, slope, scale);
#endif
  auto grad = grad_in.contiguous();
  auto out = out_in.contiguous();
  auto result = torch::empty_like(grad);
  const int64_t n = grad.numel();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "fused_bias_act_backward_cpu", [&] {
    const scalar_t* pg = grad.data_ptr<scalar_t>();
    const scalar_t* po = out.data_ptr<scalar_t>();
    scalar_t* pr = result.data_ptr<scalar_t>();
    const scalar_t s = static_cast<scalar_t>(scale), ns = static_cast<scalar_t>(slope * scale);
    at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) pr[i] = po[i] > 0 ? pg[i] * s : pg[i] * ns;
    });
  });
  return result;
}
