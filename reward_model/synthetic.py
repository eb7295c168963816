"""Synthetic judged samples whose axis scores are a learnable function of the text (tests, benchmarks, demos).

Each axis has a marker word; a sample scoring ``s`` on an axis contains its marker ``s - 1`` times,
scattered through a CoT and response of mixed Chinese/English filler. A model has to find and count
the markers, which is an ordinal task. Nothing here touches the network.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from reward_model.data import Conversation, LabelledRecord

FILLER_ZH = (
    "我", "最近", "头疼", "肚子", "不舒服", "医生", "请问", "怎么办", "有点", "发烧", "咳嗽", "晚上", "睡不着",
    "吃药", "检查", "血压", "心慌", "胸口", "孩子", "老人", "好几天", "一直", "感觉", "可能", "建议", "注意",
    "休息", "喝水", "饮食", "症状", "情况", "需要", "观察", "如果", "加重", "还有", "疼得", "厉害", "嗓子",
    "拉肚子", "没胃口", "吓死了", "担心", "是不是", "严重", "昨天", "今天", "医院", "挂号", "药店",
)  # fmt: skip
FILLER_EN = (
    "doctor", "pain", "maybe", "check", "sleep", "fever", "cough", "tired", "worried", "today", "night", "medicine",
    "test", "rest", "water",
)  # fmt: skip
# One marker per axis; distinct, frequent in the corpus so the tokenizer keeps each as few tokens.
MARKERS = (
    "安慰", "急诊", "所以", "理解", "纠正", "主诉", "推理", "准确", "完整", "步骤", "沟通", "一致", "语气",
)  # fmt: skip


def _filler(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(FILLER_EN) if rng.random() < 0.2 else rng.choice(FILLER_ZH) for _ in range(n)]


def _join(words: Sequence[str]) -> str:
    # Chinese runs without spaces; English words keep a space on each side.
    out = ""
    for word in words:
        ascii_word = word.isascii()
        out += (" " + word + " ") if ascii_word else word
    return out.replace("  ", " ").strip()


def synthetic_records(
    axis_keys: Sequence[str],
    *,
    n_prompts: int = 100,
    rollouts: int = 4,
    filler_words: tuple[int, int] = (16, 24),
    label_noise: float = 0.0,
    seed: int = 0,
) -> list[LabelledRecord]:
    """``n_prompts * rollouts`` records; axis ``i``'s score is 1 + the count of ``MARKERS[i]`` in CoT and response."""
    if len(axis_keys) > len(MARKERS):
        raise ValueError(f"at most {len(MARKERS)} synthetic axes")
    rng = random.Random(seed)
    records = []
    for p in range(n_prompts):
        user = _join(_filler(rng, rng.randint(6, 12)))
        messages = (("user", user),)
        for r in range(rollouts):
            scores = {axis: rng.randint(1, 5) for axis in axis_keys}
            cot = _filler(rng, rng.randint(*filler_words))
            response = _filler(rng, rng.randint(*filler_words))
            for i, axis in enumerate(axis_keys):
                for _ in range(scores[axis] - 1):
                    target = cot if rng.random() < 0.5 else response
                    target.insert(rng.randint(0, len(target)), MARKERS[i])
            labels = dict(scores)
            if label_noise:
                for axis in axis_keys:
                    if rng.random() < label_noise:
                        labels[axis] = min(5, max(1, labels[axis] + rng.choice((-1, 1))))
            records.append(
                LabelledRecord(
                    conversation=Conversation(messages, _join(cot), _join(response)),
                    scores={axis: (level,) for axis, level in labels.items()},
                    id=f"p{p}-r{r}",
                )
            )
    return records


def synthetic_corpus(n_lines: int = 2000, seed: int = 1) -> list[str]:
    """Mixed Chinese/English lines with the markers, for training the tiny tokenizer."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = _filler(rng, rng.randint(8, 20))
        for _ in range(rng.randint(0, 4)):
            words.insert(rng.randint(0, len(words)), rng.choice(MARKERS))
        lines.append(_join(words))
    return lines
