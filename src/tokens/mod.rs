//! Token sources beside the token file (`config::TokenTable::load`): Redis
//! in websockify's `TokenRedis` format ([`redis`]).

pub mod redis;
