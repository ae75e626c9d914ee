// Python bindings of gan_partseg's optional fused StyleGAN2 kernels.
#include <torch/extension.h>

torch::Tensor fused_bias_act(const torch::Tensor& x, const torch::Tensor& bias, double slope, double scale);
torch::Tensor fused_bias_act_backward(const torch::Tensor& grad, const torch::Tensor& out, double slope,
                                      double scale);
torch::Tensor upfirdn2d(const torch::Tensor& x, const torch::Tensor& k, int64_t up, int64_t down, int64_t pad0,
                        int64_t pad1);
torch::Tensor upfirdn2d_backward(const torch::Tensor& grad, const torch::Tensor& k, int64_t in_h, int64_t in_w,
                                 int64_t up, int64_t down, int64_t pad0, int64_t pad1);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fused_bias_act", &fused_bias_act, "leaky_relu(x + bias) * scale (CPU / CUDA)");
  m.def("fused_bias_act_backward", &fused_bias_act_backward, "gradient of fused_bias_act w.r.t. x");
  m.def("upfirdn2d", &upfirdn2d, "upsample, FIR filter, downsample (CPU / CUDA)");
  m.def("upfirdn2d_backward", &upfirdn2d_backward, "adjoint of upfirdn2d w.r.t. its input");
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
