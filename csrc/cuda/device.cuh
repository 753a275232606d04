// What the device code needs from its compiler: nvcc's CUDA headers, or the SIMT simulator's prelude
// (tests/cuda_sim/simt.h, force-included when the tests compile this code as host C++). Every header under
// csrc/cuda except kernels_cuda.cu is free of ATen and of CUDA host APIs so that it compiles both ways: the
// simulation tests run this very source, not a copy of it.
#pragma once

#if defined(__CUDACC__)
#include <cuda_fp16.h>

#include <cub/block/block_scan.cuh>
// The simulator checks the alignment of every vector access; on a GPU a misaligned one faults by itself.
#define RGP_CHECK_ALIGNED(ptr, bytes) ((void)0)
#elif !defined(RGPRUNE_SIMT)
#error "csrc/cuda device code compiles with nvcc, or as host C++ under tests/cuda_sim/simt.h"
#endif

#include <cstdint>
#include <cstring>
