//! HTTP/1.1 request heads, static assets and the WebSocket upgrade, sans-IO.
//! OWNED BY: the http work.
