// loom-bench constrained MODEL [--threads T]: what constrained decoding from a JSON schema costs per token on a real
// vocabulary (Gemma 3's 262,144 tokens), against the model's own decoding time per token, in one process.
//
// Documents: QA replies under templates/qa/schema.json on three PubMed-like passages (greedy, and one sampled at
// temperature 1) and two Evol-Instruct verdicts under templates/evol/verdict.schema.json. At every step it times
//   - decode: InferenceSession.append of one token (the forward pass with the KV cache), the denominator;
//   - constraint: applyConstraint (the fast mask over the whole vocabulary and -inf on the disallowed logits) plus
//     SchemaConstraint.accept of the chosen token: all that constrained decoding adds to a step;
//   - the fast mask alone (TokenMask.fill), and the reference mask (every token through the matcher), which must
//     give the same bits.
// One-off costs (the token trie of the vocabulary, each grammar) are reported apart: a backend pays them once.

import Foundation
import LoomCore
import LoomGrammar
import LoomTensor
import LoomTrain

func constrainedBench(model path: String, threads: Int) {
    do {
        Compute.configure(threads: threads)
        let chat = try ChatModel.load(directory: path)
        let V = chat.model.config.vocabSize
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        var t = now()
        let trie = SchemaConstraint.trie(for: chat.codec, vocabSize: V)
        let trieSeconds = now() - t
        let withBytes = trie.tokens.filter { $0 != nil }.count
        print(
            "model \(path): vocabulary \(V) tokens (\(withBytes) with bytes; \(trie.pureCount) pure string tokens of 1...\(trie.pureLimit) code points in the precomputed tables); trie \(trie.trieNodes) nodes, impure trie \(trie.impureTrieNodes); \(threads) threads"
        )
        let root = benchDir + "/.."
        let qaSchema = try JSONValue.parse(try FS.readText(root + "/templates/qa/schema.json"))
        let verdictSchema = try JSONValue.parse(try FS.readText(root + "/templates/evol/verdict.schema.json"))
        t = now()
        let qa = TokenMask(grammar: try JSONSchemaGrammar(schema: qaSchema), trie: trie)
        let verdict = TokenMask(grammar: try JSONSchemaGrammar(schema: verdictSchema), trie: trie)
        let compileSeconds = now() - t
        print("one-off: token trie \(f(trieSeconds, 2)) s; both grammars \(f(compileSeconds * 1000, 2)) ms")

        // Single states, the escape state being the slowest: after a backslash every token starting with an escape
        // letter is walked (the string-content tables do not apply).
        let states: [(String, [UInt8])] = [
            ("start of the document", []),
            ("start of a string", Array(#"{"pairs":[{"question":""#.utf8)),
            ("inside a string", Array(#"{"pairs":[{"question":"What is"#.utf8)),
            ("after a backslash", Array(#"{"pairs":[{"question":"What \"#.utf8)),
            ("inside a 3-byte character", Array(#"{"pairs":[{"question":"What "#.utf8) + [0xE2]),
            ("after a string (minLength reached)", Array(#"{"pairs":[{"question":"What is it?""#.utf8)),
            ("after an array item", Array(#"{"pairs":[{"question":"What is it?","answer":"A drug."}"#.utf8)),
        ]
        for (name, prefix) in states {
            var m = GrammarMatcher(qa.grammar)
            guard m.feed(prefix) else { throw LoomError("state \(name): the prefix does not match") }
            var times: [Double] = []
            var allowed = 0
            for _ in 0..<20 {
                var bits = [UInt64](repeating: 0, count: qa.words)
                t = now()
                bits.withUnsafeMutableBufferPointer { qa.fill(m, $0.baseAddress!) }
                times.append(now() - t)
                allowed = bits.reduce(0) { $0 + $1.nonzeroBitCount }
            }
            t = now()
            let ref = qa.referenceMask(m)
            let refTime = now() - t
            print("state \(name): \(allowed) tokens allowed; fast mask median \(f(median(times) * 1000, 3)) ms, reference \(f(refTime * 1000, 1)) ms, equal: \(ref == qa.mask(m))")
        }

        let passages = [
            "Metformin is the first-line drug for type 2 diabetes. In a randomized trial of 3,234 adults with impaired glucose tolerance, metformin reduced the incidence of diabetes by 31% compared with placebo over 2.8 years, while an intensive lifestyle intervention reduced it by 58%.",
            "Tuberculosis remains a leading infectious cause of death worldwide. Rifampicin-resistant strains were found in 4.1% of new cases and 19% of previously treated cases; rapid molecular tests shortened the time to appropriate treatment from 40 days to 9.",
            "In a cohort of 12,045 older adults followed for 10 years, each additional hour of daily walking was associated with a 12% lower risk of hip fracture, independent of body mass index, smoking and vitamin D status.",
        ]
        var documents: [(String, TokenMask, Double)] = passages.map {
            ("Passage: \($0)\n\nQuestions and answers about the passage, as JSON:\n", qa, 0)
        }
        documents.append((documents[0].0, qa, 1))
        documents.append(("Instruction A: Sort a list.\nInstruction B: Order the items of a list.\nVerdict as JSON:\n", verdict, 0))
        documents.append(("Instruction A: Translate to French.\nInstruction B: Write a poem.\nVerdict as JSON:\n", verdict, 0))

        var decode: [Double] = [], constraint: [Double] = [], fast: [Double] = [], reference: [Double] = []
        var fastInString: [Double] = [], fastElsewhere: [Double] = []
        var mismatches = 0
        let session = InferenceSession(model: chat.model)
        for (d, (prompt, mask, temperature)) in documents.enumerated() {
            session.truncate(to: 0)
            var logits = try session.append(chat.textTokens(prompt))
            let c = SchemaConstraint(mask: mask)
            var sampler = Sampler(SamplingOptions(temperature: temperature, seed: 1))
            var tokens: [Int32] = []
            while !c.mustStop && tokens.count < 600 {
                // The fast mask and the reference mask on the same state (timed apart from the step).
                let inString = c.matcher.stringRoom != nil
                var bits = [UInt64](repeating: 0, count: mask.words)
                t = now()
                bits.withUnsafeMutableBufferPointer { mask.fill(c.matcher, $0.baseAddress!) }
                let fastTime = now() - t
                fast.append(fastTime)
                if inString { fastInString.append(fastTime) } else { fastElsewhere.append(fastTime) }
                t = now()
                let ref = mask.referenceMask(c.matcher)
                reference.append(now() - t)
                if ref != bits { mismatches += 1 }
                // The step as generation runs it.
                t = now()
                let ok = logits.withUnsafeMutableBufferPointer {
                    applyConstraint(c, to: $0.baseAddress!, vocabSize: $0.count, stopTokens: chat.stopTokens)
                }
                var spent = now() - t
                guard ok else { throw LoomError("no token allowed") }
                let next = sampler.next(logits)
                if chat.stopTokens.contains(next) { break }
                t = now()
                c.accept(next)
                spent += now() - t
                constraint.append(spent)
                tokens.append(next)
                t = now()
                logits = try session.append([next])
                decode.append(now() - t)
            }
            let text = chat.codec.decode(tokens)
            let valid = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) != nil
            print("document \(d + 1) (temperature \(temperature)): \(tokens.count) tokens, valid JSON: \(valid): \(text.prefix(160))\(text.count > 160 ? "..." : "")")
        }
        func ms(_ xs: [Double]) -> String {
            xs.isEmpty ? "-" : "mean \(f(xs.reduce(0, +) / Double(xs.count) * 1000, 3)) ms, median \(f(median(xs) * 1000, 3)) ms, max \(f(xs.max()! * 1000, 3)) ms"
        }
        let meanDecode = decode.reduce(0, +) / Double(decode.count)
        let meanConstraint = constraint.reduce(0, +) / Double(constraint.count)
        print("per token over \(decode.count) steps of \(documents.count) documents:")
        print("  decode (one token through the model, KV cache): \(ms(decode))")
        print("  constrained decoding's cost (applyConstraint + accept): \(ms(constraint))")
        print("  fast mask (TokenMask.fill): \(ms(fast)); inside strings (\(fastInString.count) steps) \(ms(fastInString)); elsewhere (\(fastElsewhere.count)) \(ms(fastElsewhere))")
        print("  reference mask (every token through the matcher): \(ms(reference))")
        print("  fast mask = reference mask: \(mismatches == 0 ? "at every step" : "DIFFERS at \(mismatches) steps")")
        print("ratio constrained decoding / decode per token: mean \(f(meanConstraint / meanDecode * 100, 2))%, median \(f(median(constraint) / median(decode) * 100, 2))%; reference mask / decode: \(f(reference.reduce(0, +) / Double(reference.count) / meanDecode * 100, 1))%")
    } catch {
        print("constrained: \(error)")
        exit(1)
    }
}
