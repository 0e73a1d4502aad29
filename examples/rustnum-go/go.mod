module wasmbeam.dev/examples/rustnum

go 1.24
