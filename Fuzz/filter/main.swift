// libFuzzer target for the quality filters (LoomFilter) on untrusted text: any bytes, read as UTF-8 with
// replacement characters as Loom's readers do, must run through the word splitter, the sentence count and every
// rule set without a crash or a hang, and the splitter's tokens must partition the text (in order, inside it, every
// non-space character in exactly one word). Build and run (see Fuzz/README.md):
//   LOOM_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-filter
//   SWIFT_BACKTRACE=enable=no .build-fuzz/debug/loom-fuzz-filter /tmp/fcorpus -max_total_time=600 -max_len=4096

import LoomFilter

let rules: [any RuleSet] = [GopherQuality(), GopherRepetition(), C4Quality(), FineWebQuality(), OCRQuality()]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let s = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let doc = FilterDocument(s)
    let t = doc.text
    var covered = [Bool](repeating: false, count: t.count)
    var pos = 0
    WordSplitter.tokenize(t, 0..<t.count) { tok in
        if tok.start < pos || tok.start >= tok.end || tok.end > t.count { fatalError("token \(tok) out of order or bounds") }
        if !tok.isSpace { for i in tok.start..<tok.end { covered[i] = true } }
        pos = tok.end
    }
    for i in 0..<t.count where !Chars.isSpace(t[i]) && !covered[i] { fatalError("character \(i) in no token") }
    _ = WordSplitter.sentenceCount(t, 0..<t.count)
    for r in rules { _ = r.evaluate(doc) }
    return 0
}
