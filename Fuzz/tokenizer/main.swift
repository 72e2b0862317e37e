// libFuzzer target for tokenizer.json (a model's tokenizer, read by every stage that tokenizes): any bytes must give
// a tokenizer or a LoomError, never a crash, a hang or unbounded memory. A tokenizer that loads encodes a few fixed
// texts and the input's own first bytes (every id must be one it has, and decode must return), and is written back
// as tokenizer.json, which must load to a tokenizer that writes the same bytes and encodes the same ids. Where the
// tokenizer guarantees it (byte-level pre-tokenizer without a prefix space, byte-level decoder, no normalizer, no
// added tokens, all 256 byte symbols in the vocabulary), decode(encode(x)) must give x back. Build and run (see
// Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-tokenizer
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-tokenizer /tmp/tcorpus -max_total_time=600 -max_len=8192

import LoomCore
import LoomTokenizer

let fixed = ["Hello, world!", "  two  spaces\n\nand\tlines ", "naïve café 日本語 🙂", "<s>special</s><|endoftext|>", "", "1234567890"]

func written(_ t: Tokenizer) -> [UInt8] {
    var out: [UInt8] = []
    PrettyJSON.write(t.jsonValue(), to: &out, indent: 0)
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: size)
    guard let tok = try? Tokenizer.load(bytes: input, source: "fuzz/tokenizer.json") else { return 0 }
    let texts = fixed + [String(decoding: input.prefix(200), as: UTF8.self)]
    let vocab = tok.vocabSize
    var encoded: [[Int32]] = []
    for text in texts {
        let ids = tok.encode(text)
        for id in ids where id < 0 || Int(id) >= vocab { fatalError("id \(id) outside the vocabulary of \(vocab)") }
        _ = tok.encode(text, addSpecialTokens: true)
        let (withOffsets, offsets) = tok.encodeWithOffsets(text)
        if withOffsets != ids || offsets.count != ids.count { fatalError("encodeWithOffsets differs from encode") }
        let back = tok.decode(ids)
        _ = tok.decode(ids, skipSpecialTokens: true)
        encoded.append(ids)
        if guaranteesRoundTrip(tok), back != text { fatalError("decode(encode(\(text.debugDescription))) = \(back.debugDescription)") }
    }
    let bytes = written(tok)
    let again: Tokenizer
    do { again = try bytes.withUnsafeBufferPointer { try Tokenizer.load(bytes: $0, source: "written") } } catch {
        fatalError("the written tokenizer.json does not load: \(error)")
    }
    if written(again) != bytes { fatalError("tokenizer.json changed on a second round trip") }
    for (text, ids) in zip(texts, encoded) where again.encode(text) != ids {
        fatalError("the written tokenizer encodes \(text.debugDescription) differently")
    }
    return 0
}

func guaranteesRoundTrip(_ t: Tokenizer) -> Bool {
    guard t.normalizer == nil, t.addedTokens.isEmpty, t.decoder == .byteLevel,
        case .byteLevel(addPrefixSpace: false, _, _)? = t.preTokenizer
    else { return false }
    return ByteLevel.alphabet.allSatisfy { t.model.vocab[$0] != nil }
}
