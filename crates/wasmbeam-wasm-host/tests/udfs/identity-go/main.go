// The identity DoFn in Go, for the per-element overhead benchmark.
package main

import "wasmbeam.dev/guest/dofn"

type identity struct{}

func (identity) ProcessElement(e *dofn.Element, out *dofn.Emitter) error {
	out.Emit(e.Value)
	return nil
}

func init() {
	dofn.Register(func(*dofn.Setup) (dofn.DoFn, error) { return identity{}, nil })
}

func main() {}
