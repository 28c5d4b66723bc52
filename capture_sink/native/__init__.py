"""The sink's native frame passes (C, one build per x86-64 level), used where faster than OpenCV.

build.py compiles frame_ops.c (the compositing passes, BGR -> YUYV) and refine_ops.c (the
refiner's passes) into one library, library.py loads the build for this CPU and wraps its calls,
choice.py times each pass against OpenCV on the first frames and keeps the faster.
"""
