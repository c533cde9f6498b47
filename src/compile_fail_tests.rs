//! Compile-time guarantees, checked as doctests (each `compile_fail` beside a compiling twin).
