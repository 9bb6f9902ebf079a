"""edge-os generate PROMPT"""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    from edge_os.cli.common import add_model_argument, add_sampling_arguments

    p = subparsers.add_parser("generate", help="generate text for one prompt",
                              description="Answer one prompt (a user message rendered with the model's chat "
                                          "template, or raw text with --raw), streaming the text.")
    p.add_argument("prompt", help="the prompt ('-' reads it from standard input)")
    add_model_argument(p)
    add_sampling_arguments(p)
    p.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: text, token_ids, finish_reason, usage, timings")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.cli.common import load_engine, sampling_from_args
    from edge_os.runtime.request import Finished, GenerationRequest, TextDelta

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    request = GenerationRequest(prompt=prompt, raw=args.raw, sampling=sampling_from_args(args),
                                max_tokens=args.max_tokens, stop=tuple(args.stop), ignore_eos=args.ignore_eos)
    engine = load_engine(args)
    final = None
    for event in engine.generate(request):
        if isinstance(event, TextDelta) and not args.json:
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, Finished):
            final = event
    if args.json:
        print(json.dumps({
            "text": final.text,
            "token_ids": list(final.token_ids),
            "finish_reason": final.finish_reason.value,
            "usage": {"prompt_tokens": final.usage.prompt_tokens, "completion_tokens": final.usage.completion_tokens},
            "timings": {"load_s": round(engine.load_s, 4), "ttft_s": round(final.timings.ttft_s, 4),
                        "prefill_tok_s": round(final.timings.prefill_tok_s, 2),
                        "decode_tok_s": round(final.timings.decode_tok_s, 2)},
        }))
    else:
        sys.stdout.write("\n")
    return 0
