"""The one image decode, shared by the training pipeline and the exported SavedModel.

Training and serving must see the same pixels, so both call these two functions: encoded bytes
-> float32 RGB in 0..255 at the model's size. Normalisation belongs to the backbone (inside
the model), not here.
"""

from __future__ import annotations

import tensorflow as tf


def decode_image(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded JPEG/PNG/BMP/GIF/WebP bytes -> float32 [S, S, 3] in 0..255.

    Gray and palette images become RGB, alpha is dropped, a GIF gives its first frame, 16-bit
    PNGs are scaled to 8 bits. Resized (bilinear, aspect ratio not kept) like `resize_image`.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    image = resize_image(image, image_size)
    return tf.ensure_shape(image, [image_size, image_size, 3])


def resize_image(images: tf.Tensor, image_size: int) -> tf.Tensor:
    """Images [H, W, 3] or [N, H, W, 3], any dtype in 0..255 -> float32 at S x S (bilinear).

    An image that is already S x S comes back unchanged (bilinear resampling at scale 1 is the
    identity).
    """
    images = tf.cast(images, tf.float32)
    return tf.image.resize(images, [image_size, image_size], method="bilinear")
