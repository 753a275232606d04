// Op schemas (declared once) and the checks shared by every backend.
#include <torch/extension.h>
#include <torch/library.h>

#include "rgprune.h"

namespace rgprune {

int key_bits_of(at::ScalarType dtype) {
  return dispatch_keys(dtype, [](auto traits) { return decltype(traits)::key_bits; });
}

void check_tensor_lists(const at::TensorList& tensors, const at::TensorList& masks, bool same_dtype) {
  TORCH_CHECK(!tensors.empty(), "rgprune: empty tensor list; pass at least one weight tensor");
  TORCH_CHECK(tensors.size() == masks.size(), "rgprune: got ", tensors.size(), " tensors but ", masks.size(),
              " masks; pass one mask per tensor");
  const auto device = tensors[0].device();
  const auto dtype = tensors[0].scalar_type();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const auto& m = masks[i];
    TORCH_CHECK(at::isFloatingType(t.scalar_type()) && t.scalar_type() != at::kFloat8_e4m3fn,
                "rgprune: tensor ", i, " has dtype ", t.scalar_type(), "; pass floating-point weights");
    key_bits_of(t.scalar_type());
    TORCH_CHECK(!same_dtype || t.scalar_type() == dtype, "rgprune: tensor ", i, " has dtype ", t.scalar_type(),
                " but tensor 0 has ", dtype, "; magnitudes are compared within one dtype, cast first");
    TORCH_CHECK(t.device() == device && m.device() == device, "rgprune: tensor/mask ", i,
                " is not on ", device, "; move all tensors and masks to one device");
    TORCH_CHECK(t.is_contiguous(), "rgprune: tensor ", i, " is not contiguous; pass contiguous tensors");
    TORCH_CHECK(m.scalar_type() == at::kInt && m.dim() == 1 && m.is_contiguous() &&
                    m.numel() == mask_words(t.numel()),
                "rgprune: mask ", i, " must be a contiguous 1-D int32 tensor of ", mask_words(t.numel()),
                " words for a tensor of ", t.numel(), " elements");
  }
}

void check_threshold_info(const at::Tensor& info, const at::Tensor& tensor) {
  TORCH_CHECK(info.scalar_type() == at::kLong && info.numel() == kInfoLen,
              "rgprune: info must be the int64 vector returned by global_magnitude_threshold");
  TORCH_CHECK(info.device() == tensor.device(), "rgprune: info is on ", info.device(), " but the tensors are on ",
              tensor.device(), "; pass the info computed for these tensors");
}

void check_bits(int64_t bits, at::ScalarType dtype) {
  TORCH_CHECK(bits >= 1 && bits <= kMaxHistBits && bits <= key_bits_of(dtype), "rgprune: bits must be in [1, ",
              kMaxHistBits, "], got ", bits);
}

void check_radix_prefix(int64_t prefix, int64_t prefix_bits, int64_t bits, at::ScalarType dtype) {
  const int kb = key_bits_of(dtype);
  TORCH_CHECK(prefix_bits >= 0 && prefix_bits + bits <= kb, "rgprune: prefix_bits + bits must be in [bits, ", kb,
              "] for this dtype, got prefix_bits=", prefix_bits, " and bits=", bits);
  TORCH_CHECK(prefix >= 0 && (prefix >> prefix_bits) == 0, "rgprune: prefix must be in [0, 2**prefix_bits), got ",
              prefix, " for prefix_bits=", prefix_bits);
}

}  // namespace rgprune

TORCH_LIBRARY(rgprune, m) {
  m.def("magnitude_histogram(Tensor[] tensors, Tensor[] masks, int bits) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("global_magnitude_threshold(Tensor[] tensors, Tensor[] masks, int k) -> (Tensor, Tensor)");
  m.def("radix_histogram(Tensor[] tensors, Tensor[] masks, int prefix, int prefix_bits, int bits) -> Tensor");
  m.def(
      "apply_threshold_(Tensor(a!)[] tensors, Tensor(b!)[] masks, Tensor info, int bits) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("apply_masks_(Tensor(a!)[] tensors, Tensor[] masks) -> ()");
  m.def("masks_where_one_(Tensor[] tensors, Tensor(a!)[] masks) -> ()");
  m.def("threshold_masks_(Tensor[] tensors, Tensor(a!)[] masks, Tensor info) -> ()");
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
#ifdef RGPRUNE_WITH_CUDA
  mod.attr("built_with_cuda") = true;
#else
  mod.attr("built_with_cuda") = false;
#endif
  mod.attr("cpu_kernels_parallel") = rgprune::cpu_kernels_parallel();
  // The format constants, for the test that rgprune/kernels/format.py (their Python twin) agrees.
  mod.attr("RADIX_BITS") = rgprune::kRadixBits;
  mod.attr("MAX_HIST_BITS") = rgprune::kMaxHistBits;
  mod.attr("INFO_KEY") = static_cast<int>(rgprune::kInfoKey);
  mod.attr("INFO_N_BELOW") = static_cast<int>(rgprune::kInfoBelow);
  mod.attr("INFO_N_TIES") = static_cast<int>(rgprune::kInfoTies);
  mod.attr("INFO_N_EQUAL") = static_cast<int>(rgprune::kInfoEqual);
  mod.attr("INFO_N_SURVIVORS") = static_cast<int>(rgprune::kInfoSurvivors);
  mod.attr("INFO_N_NAN") = static_cast<int>(rgprune::kInfoNan);
  mod.attr("INFO_N_OUTSIDE") = static_cast<int>(rgprune::kInfoOutside);
  mod.attr("INFO_LEN") = static_cast<int>(rgprune::kInfoLen);
  pybind11::dict key_bits, inf_key;  // by torch dtype name, through the dispatch the kernels use
  const std::pair<at::ScalarType, const char*> dtypes[] = {
      {at::kFloat, "float32"}, {at::kHalf, "float16"}, {at::kBFloat16, "bfloat16"}, {at::kDouble, "float64"}};
  for (const auto& [dtype, name] : dtypes) {
    rgprune::dispatch_keys(dtype, [&, name = name](auto traits) {
      key_bits[name] = decltype(traits)::key_bits;
      inf_key[name] = decltype(traits)::inf_key;
    });
  }
  mod.attr("KEY_BITS") = key_bits;
  mod.attr("INF_KEY") = inf_key;
  mod.def("mask_words", &rgprune::mask_words, "int32 words of the bit-packed mask of a tensor of numel elements");
  mod.def("threshold_window_counts", &rgprune::threshold_window_counts,
          "(thresholds with a first-pass key window, of which selected in it), CPU float32, since load");
}
