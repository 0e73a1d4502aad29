module ml-score-udf

go 1.24

require (
	wasmbeam.dev/examples/rustnum v0.0.0
	wasmbeam.dev/guest v0.0.0
)

replace wasmbeam.dev/guest => ../../../sdk-guests/go

replace wasmbeam.dev/examples/rustnum => ../../rustnum-go
