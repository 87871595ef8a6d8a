"""Learning without Forgetting (Li and Hoiem, 2016) as a Keras model: the old model's scores on
each training batch are soft targets for the new model's old-class columns.

`DistillingModel` wraps the model being trained (the student, whose weights the run saves)
and the frozen old model (the teacher), like Keras' knowledge-distillation example: `call` is
the student's, and `compute_loss` adds to the compiled loss

    weight * T^2 * KL( softmax(z_teacher / T) || softmax(z_student[:, :K_old] / T) )

where z are logits. Both models end in a softmax, and log p = z - logsumexp(z), so the
softmax of log p / T over the old columns is that of z / T: the term is computed from the
scores themselves (clipped at 1e-12 before the log; below that a score gives no gradient).
The teacher sees the same (augmented) batch as the student. It is a plain `keras.Model`:
compile it and call `fit` as usual.
"""

from __future__ import annotations

import keras
from keras import ops

EPSILON = 1e-12


def distillation_loss(teacher_scores, student_scores, temperature: float):
    """Mean over the batch of T^2 * KL(teacher_T || student_T), the student restricted to the
    teacher's K_old columns. Both are softmax scores."""
    k_old = teacher_scores.shape[-1]
    teacher_scores = ops.cast(teacher_scores, "float32")
    student_old = ops.cast(student_scores, "float32")[:, :k_old]

    def soft_log(scores):
        return ops.log_softmax(ops.log(ops.maximum(scores, EPSILON)) / temperature, axis=-1)

    log_t, log_s = soft_log(teacher_scores), soft_log(student_old)
    kl = ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1)
    return temperature**2 * ops.mean(kl)


class DistillingModel(keras.Model):
    """`student` trained with `weight` times the distillation term from the frozen `teacher`.

    Args:
        student: the model being trained, K_total softmax scores (old classes first).
        teacher: the old model, K_old softmax scores, on the same inputs.
        temperature: T, softening both score vectors.
        weight: the term's weight beside the compiled loss.

    Example:
    ```python
    model = DistillingModel(grown, old_model, temperature=2.0, weight=1.0)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(dataset, epochs=3)  # grown's weights are trained; old_model's are not
    ```
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, *, temperature: float,
                 weight: float, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.temperature, self.weight = float(temperature), float(weight)
        self.distill_tracker = keras.metrics.Mean(name="distill_loss")
        self.built = True  # both models are built; weights load before the first batch

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if not training:
            return loss
        teacher = ops.stop_gradient(self.teacher(x, training=False))
        term = distillation_loss(teacher, y_pred, self.temperature)
        self.distill_tracker.update_state(term)
        return loss + self.weight * term
