//! A DoFn built against a future contract version (wasmbeam:udf@9.0.0,
//! wit/ beside this file): the host must refuse it with a clear message.
wit_bindgen::generate!({ path: "wit", world: "wasmbeam:udf/dofn-udf@9.0.0" });

use exports::wasmbeam::udf::dofn::Guest;
use wasmbeam::udf::types::{InputBatch, OutputBatch, SideInputKind, UdfError, Values};

struct Future;

impl Guest for Future {
    fn runtime_init() {}
    fn setup(_: Vec<u8>, _: Vec<String>) -> Result<(), UdfError> {
        Ok(())
    }
    fn load_side_input(_: String, _: SideInputKind, _: InputBatch) -> Result<(), UdfError> {
        Ok(())
    }
    fn process_bundle(_: InputBatch) -> Result<OutputBatch, UdfError> {
        Ok(OutputBatch { values: Values { data: vec![], offsets: vec![0] }, tags: vec![], sources: vec![], timestamps: vec![] })
    }
    fn finish_bundle() -> Result<OutputBatch, UdfError> {
        Self::process_bundle(InputBatch {
            values: Values { data: vec![], offsets: vec![0] },
            timestamps: vec![],
            window_offsets: vec![0],
            window_starts: vec![],
            window_ends: vec![],
            panes: vec![],
        })
    }
    fn teardown() {}
}

export!(Future);
