"""Hardware meters: RAPL through powercap, NVIDIA through NVML, process activity, estimates.

Everything under this package imports only the standard library, psutil and (for NVIDIA
GPUs, when present) nvidia-ml-py.
"""
