"""Generated protobuf and gRPC code for ``proto/goatkit/v1/plugin.proto`` (see README.md here)."""
