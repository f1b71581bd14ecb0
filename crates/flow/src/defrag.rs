//! IP defragmentation (placeholder).
