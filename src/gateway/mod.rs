//! Gateway mode: one RFB session per target, shared by its viewers.
