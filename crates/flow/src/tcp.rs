//! TCP reassembly (placeholder).
