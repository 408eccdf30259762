mod chunks;
mod state;
