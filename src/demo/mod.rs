//! The built-in demo VNC server (sans-IO RFB server side). OWNED BY: the demo work.
