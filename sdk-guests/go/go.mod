module wasmbeam.dev/guest

go 1.24
