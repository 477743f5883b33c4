"""Build tiny, deterministic GGUF models whose greedy output is designed in advance.

The model is a one-block "llama" whose attention and FFN weights are all zero, so the
hidden state at every position is just the embedding of that position's own token (the
residual path). With one-hot embeddings, the output projection is therefore a lookup
table "current token -> next token": greedy decoding walks a chain we choose.

The rendered chat prompt ends with ``<|im_start|>assistant\\n``, so its last token is the
byte token for "\\n". The builder wires "\\n" -> reply[0] -> ... -> reply[-1] -> EOS, and
every other token -> EOS. A token can have only one successor, so a text the reply writes
again is spelled differently the next time: as two new normal tokens with the same text
("<|channel|>" becomes "<|cha" + "nnel|>"; llama.cpp refuses two tokens of one text).
The parser reads text, so the model still wrote what the reply says.

The tokenizer is GPT-2 byte-level BPE: all 256 byte tokens are present (any text
tokenizes), then the special tokens, then the designed "word" tokens together with the
merges (and intermediate tokens) that make tokenizing a word's text yield its token.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import gguf
import numpy as np

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
DEFAULT_SPECIALS: tuple[str, ...] = (
    IM_START,
    IM_END,
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
)
# ChatML. String literals inside the expressions (rather than raw template text) keep the
# newlines intact whatever trim_blocks / lstrip_blocks settings the renderer uses.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

HEAD_DIM = 64  # n_embd is a multiple of this; one KV head keeps attn_k/attn_v small
N_FF = 64
# Logit of a token's designed successor; every other logit is 0.
LOGIT_GAP = 20.0
RMS_EPS = 1e-5


@dataclass(frozen=True)
class TinyModel:
    path: Path
    reply: tuple[str, ...]  # the designed chain, as human-text tokens (as asked)
    eos: str
    reply_ids: tuple[int, ...]  # token ids of the chain (a repeated text is two), in order
    eos_id: int
    specials: tuple[str, ...]
    chat_template: str
    n_ctx: int
    n_vocab: int = 0
    n_embd: int = 0

    def logprobs(self) -> tuple[float, float]:
        """The designed log probabilities at every position: (of the token's successor,
        of any other token). The successor's logit is LOGIT_GAP shrunk by the final RMS
        norm's epsilon (a one-hot hidden state has mean square 1/n_embd), the others 0."""
        gap = LOGIT_GAP / math.sqrt(1 + self.n_embd * RMS_EPS)
        norm = math.log(math.exp(gap) + self.n_vocab - 1)
        return gap - norm, -norm


# --- byte-level text ------------------------------------------------------------------


@cache
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character mapping."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


def to_bpe_text(text: str) -> str:
    """Human text -> GPT-2 token text (" Hello" -> "ĠHello", "\\n" -> "Ċ")."""
    table = byte_to_unicode()
    return "".join(table[b] for b in text.encode("utf-8"))


# --- vocabulary and merges ------------------------------------------------------------


def _bpe(symbols: list[str], ranks: Mapping[tuple[str, str], int]) -> list[str]:
    """Greedy BPE as llama.cpp does it: repeatedly merge the lowest-ranked adjacent pair."""
    symbols = list(symbols)
    while len(symbols) > 1:
        best = min(
            range(len(symbols) - 1),
            key=lambda i: ranks.get((symbols[i], symbols[i + 1]), math.inf),
        )
        if (symbols[best], symbols[best + 1]) not in ranks:
            break
        symbols[best : best + 2] = [symbols[best] + symbols[best + 1]]
    return symbols


def build_merges(words: Iterable[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Merges (and the tokens they create) such that BPE turns each word into one token.

    Words are handled one at a time, like a tiny BPE trainer: run BPE with the merges so
    far, then append merges that join the leftover pieces left to right. Appended merges
    rank after all earlier ones, so earlier words still tokenize the same way.
    Returns (merges in rank order, newly created tokens in creation order).
    """
    ranks: dict[tuple[str, str], int] = {}
    created: list[str] = []
    for word in words:
        pieces = _bpe(list(word), ranks)
        left = pieces[0]
        for right in pieces[1:]:
            ranks.setdefault((left, right), len(ranks))
            left += right
            if left not in created:
                created.append(left)
    return list(ranks), created


@dataclass(frozen=True)
class Vocab:
    tokens: list[str]  # GPT-2 token text, index = token id
    types: list[int]  # gguf.TokenType per token
    merges: list[str]  # "left right", in rank order

    def id_of(self, token_text: str) -> int:
        return self.tokens.index(token_text)


def build_vocab(
    specials: Sequence[str], words: Sequence[str], user_defined: Sequence[str] = ()
) -> Vocab:
    """256 byte tokens (id == byte value), then specials, then word and merge tokens.

    `words` are human-text tokens; single-byte ones already exist as byte tokens. Specials
    are CONTROL tokens (they detokenise to nothing) unless listed in `user_defined`
    (USER_DEFINED: they detokenise to their text, as some reasoning models ship them).
    """
    tokens = [byte_to_unicode()[b] for b in range(256)]
    types = [gguf.TokenType.NORMAL] * 256
    tokens += specials
    types += [
        gguf.TokenType.USER_DEFINED if s in user_defined else gguf.TokenType.CONTROL
        for s in specials
    ]

    bpe_words = [to_bpe_text(w) for w in words]
    merges, created = build_merges(w for w in bpe_words if len(w) > 1)
    for token in created:
        if token not in tokens:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return Vocab(
        tokens=tokens,
        types=[int(t) for t in types],
        merges=[f"{left} {right}" for left, right in merges],
    )


# --- the designed chain ---------------------------------------------------------------


def spell_repeats(reply: Sequence[str], taken: Iterable[str]) -> list[str]:
    """`reply` with every occurrence of a text after its first spelled as two fresh
    tokens whose texts join to it (split near the middle, at the first point where neither
    piece is a token already), so that each token of the chain occurs once."""
    used = set(taken)
    out: list[str] = []
    for tok in reply:
        if tok not in used:
            used.add(tok)
            out.append(tok)
            continue
        middle = len(tok) // 2
        cuts = sorted(range(1, len(tok)), key=lambda cut: abs(cut - middle))
        for cut in cuts:
            left, right = tok[:cut], tok[cut:]
            if left not in used and right not in used and len(left) > 1 and len(right) > 1:
                break
        else:
            raise ValueError(
                f"reply token {tok!r} is already in the chain and cannot be spelled again "
                "as two new tokens: each token has exactly one successor, so a token may "
                "appear only once"
            )
        used.update((left, right))
        out += [left, right]
    return out


def chain_ids(
    vocab: Vocab, reply: Sequence[str], specials: Sequence[str], eos: str, start: str = "\n"
) -> list[int]:
    """Token ids of `start` (the prompt's last token), the reply tokens, then EOS; each must
    occur once."""
    chain = [start, *reply, eos]
    ids = [vocab.id_of(tok) if tok in specials else vocab.id_of(to_bpe_text(tok)) for tok in chain]
    seen: dict[int, str] = {}
    for tok, tid in zip(chain, ids, strict=True):
        if tid in seen:
            where = "also ends the prompt" if tok == start else "is already in the chain"
            if tok == eos:
                where = "is the EOS token that ends the chain"
            raise ValueError(
                f"reply token {tok!r} {where}: each token has exactly one successor, so a "
                f"token may appear only once in {start!r} -> reply -> {eos}"
            )
        seen[tid] = tok
    return ids


# --- weights --------------------------------------------------------------------------


def build_weights(
    n_vocab: int,
    n_embd: int,
    chain: Sequence[int],
    eos_id: int,
    branches: Sequence[Sequence[int]] = (),
) -> dict[str, np.ndarray]:
    """All tensors, as numpy arrays (numpy shape is ggml's ne reversed)."""
    f32 = np.float32
    # Successor table: default EOS, overridden along the chains.
    successor = np.full(n_vocab, eos_id, dtype=np.int64)
    for path in (chain, *branches):
        successor[np.array(path[:-1], dtype=np.int64)] = path[1:]

    # final RMSNorm turns the one-hot e_i into sqrt(n_embd) * e_i; undo that scale.
    output = np.zeros((n_vocab, n_embd), dtype=f32)
    output[successor, np.arange(n_vocab)] = LOGIT_GAP / math.sqrt(n_embd)

    n_kv = HEAD_DIM  # one KV head
    return {
        "token_embd.weight": np.eye(n_vocab, n_embd, dtype=f32),
        "output_norm.weight": np.ones(n_embd, dtype=f32),
        "output.weight": output,
        "blk.0.attn_norm.weight": np.ones(n_embd, dtype=f32),
        "blk.0.attn_q.weight": np.zeros((n_embd, n_embd), dtype=f32),
        "blk.0.attn_k.weight": np.zeros((n_kv, n_embd), dtype=f32),
        "blk.0.attn_v.weight": np.zeros((n_kv, n_embd), dtype=f32),
        "blk.0.attn_output.weight": np.zeros((n_embd, n_embd), dtype=f32),
        "blk.0.ffn_norm.weight": np.ones(n_embd, dtype=f32),
        "blk.0.ffn_gate.weight": np.zeros((N_FF, n_embd), dtype=f32),
        "blk.0.ffn_up.weight": np.zeros((N_FF, n_embd), dtype=f32),
        "blk.0.ffn_down.weight": np.zeros((n_embd, N_FF), dtype=f32),
    }


# --- writer ---------------------------------------------------------------------------


# Fill-in-the-middle specials and the metadata keys that name them (as code models' GGUFs do).
FIM_KEYS = {
    "<|fim_prefix|>": "tokenizer.ggml.fim_pre_token_id",
    "<|fim_suffix|>": "tokenizer.ggml.fim_suf_token_id",
    "<|fim_middle|>": "tokenizer.ggml.fim_mid_token_id",
}


def write_gguf(
    path: Path,
    *,
    name: str,
    vocab: Vocab,
    weights: Mapping[str, np.ndarray],
    n_embd: int,
    n_ctx: int,
    bos_id: int,
    eos_id: int,
    chat_template: str,
    pooling: gguf.PoolingType | None = None,
) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    if pooling is not None:
        writer.add_pooling_type(pooling)
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(n_embd // HEAD_DIM)
    writer.add_head_count_kv(1)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_layer_norm_rms_eps(RMS_EPS)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    writer.add_bos_token_id(bos_id)
    writer.add_eos_token_id(eos_id)
    writer.add_eot_token_id(eos_id)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_chat_template(chat_template)
    for text, key in FIM_KEYS.items():
        if text in vocab.tokens:
            writer.add_uint32(key, vocab.id_of(text))

    for tensor_name, array in weights.items():
        writer.add_tensor(tensor_name, array)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# --- public entry point ---------------------------------------------------------------


def build_tiny_gguf(
    path: Path,
    reply: Sequence[str],
    *,
    specials: Sequence[str] = DEFAULT_SPECIALS,
    chat_template: str | None = None,
    n_ctx: int = 512,
    name: str = "tiny",
    endless: bool = False,
    user_defined: Sequence[str] = (),
    start: str = "\n",
    pooling: gguf.PoolingType | None = None,
    branches: Mapping[str, Sequence[str]] | None = None,
) -> TinyModel:
    """Write a GGUF to `path` whose greedy reply to any ChatML prompt is `reply` + EOS.

    `reply` is a list of human-text tokens, e.g. ["<think>", "Hi", "</think>", "Hello", "!"].
    Entries equal to a special token use it; any other text becomes one normal token (built
    from bytes with merges, so tokenizing a single GPT-2 pre-token word yields that token).
    `specials` must contain <|im_start|> (BOS) and <|im_end|> (EOS/EOT); pass a list
    without "<think>" to build a model that lacks it. With `endless`, the last reply token
    leads back to the first, so generation only ends at a limit or a cancellation.
    `start` is the prompt's last token (a special, or a word that tokenizes alone): the chain
    begins there, so templates whose prompt does not end in "\\n" can be served too.
    `pooling` marks the model as an embedding model pooled that way (the hidden state of a
    token is its one-hot embedding, so a mean-pooled vector counts the input's tokens).
    `branches` adds chains that begin at other prompt endings ({start: reply}): a template
    that ends some prompts differently (after a tool result, say) gets another reply there.
    Every token of every chain still occurs once.
    """
    specials = tuple(dict.fromkeys(specials))
    for required in (IM_START, IM_END):
        if required not in specials:
            raise ValueError(f"specials must include {required!r}")
    reply = tuple(reply)
    if any(tok == "" for tok in reply):
        raise ValueError("reply tokens must be non-empty strings")
    for tok, why in ((start, "also ends the prompt"), (IM_END, "is the EOS token that ends it")):
        if tok in reply:
            raise ValueError(
                f"reply token {tok!r} {why}: the chain {start!r} -> reply -> {IM_END} may "
                "hold it only once"
            )
    spelled = spell_repeats(reply, (start, IM_END))
    taken = [start, IM_END, *spelled]
    spelled_branches: dict[str, list[str]] = {}
    for branch_start, branch_reply in (branches or {}).items():
        spelled_branches[branch_start] = spell_repeats(branch_reply, (*taken, branch_start))
        taken += [branch_start, *spelled_branches[branch_start]]
    if len(set(taken)) != len(taken):
        raise ValueError("a branch starts at a token another chain already holds")

    words = [tok for tok in taken if tok not in specials]
    vocab = build_vocab(specials, list(dict.fromkeys(words)), user_defined)
    chain = chain_ids(vocab, spelled, specials, IM_END, start)
    branch_chains = [
        chain_ids(vocab, spelled_branches[b], specials, IM_END, b) for b in spelled_branches
    ]
    n_vocab = len(vocab.tokens)
    # One-hot embeddings need n_embd >= n_vocab; heads are HEAD_DIM wide.
    n_embd = HEAD_DIM * math.ceil(n_vocab / HEAD_DIM)
    eos_id = vocab.id_of(IM_END)
    template = CHATML_TEMPLATE if chat_template is None else chat_template

    path = Path(path)
    write_gguf(
        path,
        name=name,
        vocab=vocab,
        weights=build_weights(
            n_vocab,
            n_embd,
            [*chain[:-1], chain[1]] if endless else chain,
            eos_id,
            branch_chains,
        ),
        n_embd=n_embd,
        n_ctx=n_ctx,
        bos_id=vocab.id_of(IM_START),
        eos_id=eos_id,
        chat_template=template,
        pooling=pooling,
    )
    return TinyModel(
        path=path,
        reply=reply,
        eos=IM_END,
        reply_ids=tuple(chain[1:-1]),
        eos_id=eos_id,
        specials=specials,
        chat_template=template,
        n_ctx=n_ctx,
        n_vocab=n_vocab,
        n_embd=n_embd,
    )


def render_chat(
    chat_template: str, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
) -> str:
    """Render messages with a model's template the way llama-cpp-python does (jinja2)."""
    import jinja2

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(chat_template).render(
        messages=list(messages), add_generation_prompt=add_generation_prompt
    )
