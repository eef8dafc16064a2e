"""Group near-duplicate comments (campaign letters) with MinHash and locality-sensitive hashing."""

from __future__ import annotations

import re
import unicodedata

from datasketch import MinHash, MinHashLSH

SIMILARITY = 0.8
PERMUTATIONS = 64
SHINGLE_WORDS = 3


def normalise(text: str) -> str:
    """Fold case and Unicode forms, drop punctuation and extra spaces, so trivial edits vanish."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def shingles(text: str) -> set[str]:
    words = normalise(text).split()
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def _signature(parts: set[str]) -> MinHash:
    signature = MinHash(num_perm=PERMUTATIONS, seed=7)
    signature.update_batch([part.encode() for part in parts])
    return signature


def campaign_groups(texts: dict[int, str], similarity: float = SIMILARITY) -> dict[int, int]:
    """Map each comment id that has near-duplicates to its group's id (the smallest id in the group)."""
    signatures = {cid: _signature(parts) for cid, text in texts.items() if (parts := shingles(text))}
    # LSH only proposes candidates: a lower threshold there catches pairs near the limit, and the
    # estimated similarity below decides.
    lsh = MinHashLSH(threshold=similarity * 0.6, num_perm=PERMUTATIONS)
    for cid, signature in signatures.items():
        lsh.insert(cid, signature)
    parent = {cid: cid for cid in signatures}

    def root(cid: int) -> int:
        while parent[cid] != cid:
            parent[cid] = parent[parent[cid]]
            cid = parent[cid]
        return cid

    for cid, signature in signatures.items():
        for other in lsh.query(signature):
            # LSH proposes candidates; the estimated Jaccard similarity decides.
            if other != cid and signature.jaccard(signatures[other]) >= similarity:
                a, b = root(cid), root(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for cid in signatures:
        groups.setdefault(root(cid), []).append(cid)
    return {cid: min(members) for members in groups.values() if len(members) > 1 for cid in members}
