"""The clustering formulas, written once for Keras tensors and NumPy arrays alike.

Each function takes ``xp``, the array namespace: ``keras.ops`` (the default, for training losses) or
``numpy`` (for label-free scoring of whole data sets). Both spell ``mean``, ``sum``, ``log``, ``maximum``
and ``power`` the same way, so a formula used in training and in scoring cannot drift apart.
``tests/test_losses.py`` checks each against a plain loop.

- SCAN (Van Gansbeke et al. 2020, eq. 2): ``consistency - lambda * entropy``, with the consistency
  ``-mean log <p(anchor), p(neighbour)>`` and the entropy of the mean assignment;
- DEC's Student-t kernel (Xie et al. 2016, eq. 1), also the soft assignment of K-means and Ward;
- TEMI (Adaloglou et al. 2023, eq. 5-7): the teacher-weighted pointwise mutual information of an image
  and a mined neighbour, ``beta``-tempered, from a student's and an EMA teacher's probabilities.
"""

from __future__ import annotations

from keras import ops

#: Floor of a probability or similarity inside a log.
EPS = 1e-8


def log_similarity(anchor, neighbour, xp=ops):
    """``log <p(anchor), p(neighbour)>`` over the last axis (floored at :data:`EPS`)."""
    return xp.log(xp.maximum(xp.sum(anchor * neighbour, axis=-1), EPS))


def entropy(p, xp=ops):
    """Entropy of distributions over the last axis: ``-sum p log p``."""
    return -xp.sum(p * xp.log(xp.maximum(p, EPS)), axis=-1)


def scan_loss(anchor_probs, neighbour_probs, entropy_weight: float = 5.0, xp=ops):
    """SCAN's loss over a batch (axis 0); any axes between the batch and the clusters are kept (heads).

    Args:
        anchor_probs, neighbour_probs: (B, ..., K) probabilities.
        entropy_weight: lambda (the paper: 5).

    Returns:
        (total, consistency, entropy), total = consistency - entropy_weight * entropy.
    """
    consistency = -xp.mean(log_similarity(anchor_probs, neighbour_probs, xp), axis=0)
    spread = entropy(xp.mean(anchor_probs, axis=0), xp)
    return consistency - entropy_weight * spread, consistency, spread


def student_t(d2, alpha: float = 1.0, xp=ops):
    """Student-t kernel ``(1 + d2 / alpha)^-((alpha + 1) / 2)`` of squared distances, rows normalised."""
    q = xp.power(1.0 + d2 / alpha, -(alpha + 1.0) / 2.0)
    return q / xp.sum(q, axis=1, keepdims=True)


#: Floor of ``(p q)`` under TEMI's power ``beta`` < 1 (whose gradient at 0 is infinite).
TINY = 1e-20


def pmi_beta(student, teacher, marginal, beta: float = 0.6, xp=ops):
    """TEMI's ``log sum_c (q_s(c|x) q_t(c|x'))^beta / qbar_t(c)`` over the last axis.

    Args:
        student, teacher: (..., K) probabilities of an image and of its neighbour.
        marginal: (..., K) the teacher's mean assignment ``qbar_t`` (broadcast against them).
    """
    joint = xp.power(xp.maximum(student * teacher, TINY), beta)
    return xp.log(xp.maximum(xp.sum(joint / marginal, axis=-1), EPS))


def temi_loss(student_a, student_b, teacher_a, teacher_b, marginal, beta: float = 0.6, xp=ops):
    """TEMI's loss over a batch of pairs (axis 0), one value per head.

    ``-(1/2) mean_batch w(a, b) [pmi(s_a, t_b) + pmi(s_b, t_a)]`` for every head, with the weight
    ``w(a, b) = (1/H) sum_h sum_c t_a^h(c) t_b^h(c)``, the teachers' agreement averaged over the heads
    (the teacher's probabilities carry no gradient; the caller stops it).

    Args:
        student_a, student_b: (B, H, K) the student's probabilities of the images and of their neighbours.
        teacher_a, teacher_b: (B, H, K) the teacher's.
        marginal: (H, K) the teacher's mean assignment per head.

    Returns:
        (H,) losses.
    """
    weight = xp.mean(xp.sum(teacher_a * teacher_b, axis=-1), axis=-1)  # (B,)
    both = pmi_beta(student_a, teacher_b, marginal, beta, xp) + pmi_beta(
        student_b, teacher_a, marginal, beta, xp
    )  # (B, H)
    return -0.5 * xp.mean(weight[:, None] * both, axis=0)
