module dedup-udf

go 1.24

require wasmbeam.dev/guest v0.0.0

replace wasmbeam.dev/guest => ../../../sdk-guests/go
