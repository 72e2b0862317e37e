// `loom serve MODEL_DIR` (the OpenAI-compatible server) and `loom generate text MODEL_DIR` (sampling from the
// terminal), and the wiring of the generator's `builtin` backend: LoomCore declares the backend protocol,
// LoomTrain implements it, and this executable registers the implementation for LoomGenerate to find.

import ArgumentParser
import Foundation
import LoomCore
import LoomServe
import LoomTensor
import LoomTrain

/// Makes `backend: builtin` available to the generate stages (called once at start-up).
func registerTextBackends() {
    TextBackends.register("builtin") { directory in try BuiltinBackend.shared(directory: directory) }
}

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model behind the OpenAI chat API (/v1/models, /v1/chat/completions, streaming).",
        discussion: """
            MODEL_DIR is a Hugging Face model directory (config.json,
            model.safetensors, tokenizer.json if any): what `loom train`
            writes, or a transformers Llama checkpoint. Conversations go
            through the ChatML template the SFT trainer uses. Any OpenAI client
            works: the official Python and JavaScript ones, curl, or Loom's own
            generator (`loom generate qa --base-url http://127.0.0.1:8000/v1`).

            Requests take max_tokens (or max_completion_tokens), temperature,
            top_p, top_k, seed, stop and stream (server-sent events; usage with
            stream_options.include_usage). Concurrent requests decode together:
            one forward pass per step for all of them (continuous batching,
            each request with its own KV cache, sampling options and stop
            strings), up to --max-batch at once; further requests wait their
            turn and join as others finish. response_format (json_schema, or
            json_object with a schema) constrains the reply to the schema.

            Safe to leave running: it listens on 127.0.0.1 unless --host says
            otherwise (and warns when it listens anywhere else); with
            --api-key-env NAME every request needs 'Authorization: Bearer KEY'
            where KEY is that environment variable's value (401 otherwise).
            Bodies over --max-body get 413, request fields OpenAI does not
            have get 400, headers must arrive within --header-timeout seconds
            (408), an idle kept-alive connection closes after --idle-timeout,
            more than --max-connections connections at once get 503, and
            max_tokens is capped by what the context leaves.

            Examples:
              loom serve out/train/model
              loom serve out/train/model --port 8011 --name tiny-sft
              LOOM_KEY=$(openssl rand -hex 16) loom serve out/sft/model --host 0.0.0.0 --api-key-env LOOM_KEY
              curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
                -d '{"model": "model", "messages": [{"role": "user", "content": "Hi"}]}'
            """)

    @Argument(help: "The model directory.")
    var model: String

    @Option(help: "The address to listen on (0.0.0.0 to accept other machines).")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on.")
    var port = 8000

    @Option(help: "The model name clients ask for (default: the directory's name).")
    var name: String?

    @Option(help: "Threads for the model (default: the core count).")
    var jobs: Int?

    @Option(help: ArgumentHelp("Most requests decoding together in one batch; more wait their turn (1: one at a time).", valueName: "n"))
    var maxBatch = 8

    @Option(help: ArgumentHelp("Require 'Authorization: Bearer KEY' on every request, KEY being this environment variable's value.", valueName: "NAME"))
    var apiKeyEnv: String?

    @Option(help: ArgumentHelp("Largest request body (bytes, or with K/M: 8M); larger ones get 413.", valueName: "size"))
    var maxBody = "8M"

    @Option(help: ArgumentHelp("Seconds for a request's headers to arrive (408 after).", valueName: "s"))
    var headerTimeout = 10.0

    @Option(help: ArgumentHelp("Seconds an idle kept-alive connection stays open.", valueName: "s"))
    var idleTimeout = 30.0

    @Option(help: ArgumentHelp("Most connections open at once (503 beyond).", valueName: "n"))
    var maxConnections = 256

    @Flag(name: .shortAndLong, help: "Print only warnings and errors.")
    var quiet = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard maxBatch >= 1 else { throw ValidationError("--max-batch must be at least 1") }
        guard headerTimeout > 0, idleTimeout > 0 else { throw ValidationError("--header-timeout and --idle-timeout must be > 0") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard Self.bytes(maxBody) != nil else { throw ValidationError("--max-body: '\(maxBody)' is not a size (e.g. 65536, 512K, 8M)") }
    }

    /// "65536", "512K", "8M" as bytes.
    static func bytes(_ s: String) -> Int? {
        let t = s.uppercased().trimmingCharacters(in: .whitespaces)
        let scale = t.hasSuffix("K") ? 1 << 10 : t.hasSuffix("M") ? 1 << 20 : t.hasSuffix("G") ? 1 << 30 : 1
        guard let n = Int(scale == 1 ? t : String(t.dropLast())), n >= 1, n <= (1 << 40) / scale else { return nil }
        return n * scale
    }

    func run() throws {
        Log.quiet = quiet
        Compute.configure(threads: jobCount(jobs))
        var key: String?
        if let apiKeyEnv {
            guard let k = ProcessInfo.processInfo.environment[apiKeyEnv], !k.isEmpty else {
                Log.error("serve: --api-key-env \(apiKeyEnv): that environment variable is not set or empty")
                throw ExitCode(1)
            }
            key = k
        }
        var limits = ServerLimits()
        limits.maxBodyBytes = Self.bytes(maxBody)!
        limits.headerTimeout = headerTimeout
        limits.idleTimeout = idleTimeout
        limits.maxConnections = maxConnections
        let server: ChatServer
        do {
            let m = try ChatModel.load(directory: model, name: name)
            m.maxBatch = maxBatch
            server = try ChatServer(model: m, host: host, port: UInt16(port), limits: limits, apiKey: key)
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
        if !ChatServer.isLoopback(host) {
            Log.warn(
                "serve: listening on \(host), reachable from other machines\(key == nil ? " and without an API key (--api-key-env NAME requires one)" : ""); the traffic is plain HTTP (put a TLS proxy in front for untrusted networks)")
        }
        let done = DispatchSemaphore(value: 0)
        Task {
            try? await server.run()
            done.signal()
        }
        Task {
            let p = await server.port
            let line = "loom serve: '\(server.model.name)' at http://\(host.contains(":") ? "[\(host)]" : host):\(p)/v1\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        }
        done.wait()
    }
}

struct GenerateText: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "text",
        abstract: "Sample text from a model (a prompt continued, or a chat reply), with a KV cache.",
        discussion: """
            Greedy by default (--temperature 0); with a temperature, --top-k and
            --top-p narrow the choice and --seed makes it repeatable. Generation
            ends at end-of-text (and end-of-turn with --chat), a --stop string,
            --max-tokens, or the model's context length. Text is printed as it
            is generated.

            Examples:
              loom generate text out/train/model --prompt "The patient presented with"
              loom generate text out/sft/model --chat --prompt "What is a D flip-flop?" --temperature 0.7 --seed 3
              loom generate text out/model --ids 1,15,27 --max-tokens 20 --output ids
            """)

    @Argument(help: "The model directory.")
    var model: String

    @Option(help: "The prompt text.")
    var prompt: String?

    @Option(help: "The prompt as token ids (comma-separated), used as given: no template, no start token.")
    var ids: String?

    @Flag(help: "Send the prompt as a user message through the chat template and print the assistant's reply.")
    var chat = false

    @Option(help: "A system message (with --chat).")
    var system: String?

    @Option(help: "Most tokens generated.")
    var maxTokens = 128

    @Option(help: "Sampling temperature (0: greedy).")
    var temperature = 0.0

    @Option(help: "Sample only among the k most likely tokens (0: all).")
    var topK = 0

    @Option(help: "Nucleus sampling: the smallest set of tokens whose probability reaches p.")
    var topP = 1.0

    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0

    @Option(help: "Stop when this string appears (repeatable); it is not printed.")
    var stop: [String] = []

    @Option(help: "text (printed as generated), ids (the generated token ids), or json (text, ids, counts).")
    var output = "text"

    @Option(help: "Threads for the model (default: the core count).")
    var jobs: Int?

    func validate() throws {
        guard (prompt == nil) != (ids == nil) else { throw ValidationError("give exactly one of --prompt and --ids") }
        guard ["text", "ids", "json"].contains(output) else { throw ValidationError("--output must be text, ids or json") }
        if chat && ids != nil { throw ValidationError("--chat needs --prompt, not --ids") }
    }

    func run() throws {
        Compute.configure(threads: jobCount(jobs))
        let o = SamplingOptions(temperature: temperature, topK: topK, topP: topP, seed: seed, maxTokens: maxTokens, stop: stop)
        let streaming = output == "text"
        let onText: ((String) -> Bool)? =
            streaming
            ? { piece in
                FileHandle.standardOutput.write(Data(piece.utf8))
                return true
            } : nil
        let r: GenerationResult
        do {
            let m = try ChatModel.load(directory: model)
            if let ids {
                var prompt: [Int32] = []
                for part in ids.split(separator: ",") {
                    guard let v = Int32(part.trimmingCharacters(in: .whitespaces)) else {
                        throw LoomError("--ids: '\(part)' is not a token id")
                    }
                    prompt.append(v)
                }
                var o = o
                if let e = m.model.config.eosTokenId { o.stopTokens.insert(Int32(e)) }
                r = try m.continuation(ids: prompt, options: o, onText: onText)
            } else if chat {
                var messages: [(role: String, content: String)] = []
                if let system { messages.append(("system", system)) }
                messages.append(("user", prompt ?? ""))
                r = try m.reply(messages, options: o, onText: onText)
            } else {
                r = try m.continuation(prompt ?? "", options: o, onText: onText)
            }
        } catch let e as LoomError {
            Log.error(e.message)
            throw ExitCode(1)
        }
        switch output {
        case "ids": print(r.tokens.map(String.init).joined(separator: " "))
        case "json":
            print(JSONValue.object(JSONObject([
                ("text", .string(r.text)), ("tokens", .array(r.tokens.map { .int(Int($0)) })),
                ("finish_reason", .string(r.finishReason)), ("prompt_tokens", .int(r.promptTokens)),
                ("completion_tokens", .int(r.completionTokens)),
            ])).jsonString)
        default: print("")
        }
    }
}
