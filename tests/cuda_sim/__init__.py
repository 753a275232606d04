"""The SIMT simulator that runs rgprune's CUDA device code on the CPU (simt.h, simt.cpp, build.py)."""
