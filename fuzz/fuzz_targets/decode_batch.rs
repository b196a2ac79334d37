//! Fuzzes the worker's decoding of broker messages: whatever arrives on the queue, decoding must
//! answer (an error sends the message to the dead-letter queue) and never panic, and whatever it
//! accepts must pass the input rules.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    if let Ok(events) = traceledger::bus::decode_batch(payload) {
        for event in &events {
            assert!(event.check().is_ok());
        }
        let encoded = traceledger::bus::encode_batch(&events).expect("events encode");
        let again = traceledger::bus::decode_batch(&encoded).expect("what decoded once decodes again");
        assert_eq!(again, events);
    }
});
