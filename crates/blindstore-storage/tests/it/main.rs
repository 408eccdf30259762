mod chunks;
