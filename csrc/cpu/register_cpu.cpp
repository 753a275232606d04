// Registers the CPU kernels with the dispatcher.
#include <torch/library.h>

#include "ops_cpu.h"

namespace rgprune {

bool cpu_kernels_parallel() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace rgprune

TORCH_LIBRARY_IMPL(rgprune, CPU, m) {
  m.impl("magnitude_histogram", &rgprune::cpu::magnitude_histogram_cpu);
  m.impl("global_magnitude_threshold", &rgprune::cpu::global_magnitude_threshold_cpu);
  m.impl("radix_histogram", &rgprune::cpu::radix_histogram_cpu);
  m.impl("apply_threshold_", &rgprune::cpu::apply_threshold_cpu);
  m.impl("apply_masks_", &rgprune::cpu::apply_masks_cpu);
  m.impl("masks_where_one_", &rgprune::cpu::masks_where_one_cpu);
  m.impl("threshold_masks_", &rgprune::cpu::threshold_masks_cpu);
}
