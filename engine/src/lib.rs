//! ringwall engine.
