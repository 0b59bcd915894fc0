"""One GAN training step: a discriminator step, then a generator step through the frozen discriminator.

For a real batch ``x`` (B samples), noise ``z`` (B, noise_dim) and a GAN loss ``L``
(:class:`minigan.losses.GANLoss`)::

    fake = G(z)                                        one generator forward per step
    D step:  L_D = L.d_real(D(x)) + L.d_fake(D(fake))
             D.backward_weights(dL_D/dD(.)): D's weight gradients only, no dL/dx
             for the images; opt_D.step()
    G step:  D frozen (it returns dL/dx but keeps no weight gradients)
             L_G = L.g(D(fake));  dL_G/dfake = D.backward(dL_G/dD(fake))
             G.backward_weights(dL_G/dfake) (the noise needs no gradient); opt_G.step()

When D has no BatchNorm, real and fake go through D as one batch of 2B: the same
numbers as two passes, one pass of overhead.  With BatchNorm the two batches go
through separately, so each is normalised by its own statistics; their weight
gradients add up in ``D.grads`` until the optimizer step.

A conditional pair (both networks start with :class:`minigan.nn.LabelJoin`) takes
the real batch's labels ``y_real`` (B,) and the labels ``y_fake`` (B,) the generator
is asked for; D sees each sample with its own label.

Nothing in the step reads a value on the host: the numbers it returns are 0-d values
on the device the networks live on, so on a GPU a step is a queue of work with no
synchronisation until someone reads them (the trainer, when it writes a log row).
"""
from __future__ import annotations

from ..nn import BatchNorm, set_labels
from ..runtime import devices


def joins_batches(D) -> bool:
    """Whether real and fake can share one pass through ``D``: only without BatchNorm,
    whose statistics would otherwise mix the two batches."""
    return not any(isinstance(m, BatchNorm) for m in D.modules())


def d_mean_output(out, loss_name: str):
    """Mean of D's outputs ``out`` (B, 1), a 0-d value on their device; for the BCE loss as a
    probability, sigmoid(logit)."""
    xp = devices.get_xp(out)
    o = out.astype(xp.float64)
    if loss_name == "bce":
        o = 1.0 / (1.0 + xp.exp(-xp.clip(o, -50, 50)))
    return o.mean()


def gan_step(G, D, opt_G, opt_D, loss, real, z, y_real=None, y_fake=None, *, joint=None,
             reduce_grads=None):
    """One D step and one G step on ``real`` (B, ...) and noise ``z`` (B, noise_dim).

    Returns ``{"d_loss", "d_real", "d_fake", "g_loss"}``: L_D, L_G and D's mean output on
    the real and on the fake batch (:func:`d_mean_output`), 0-d values on the device.
    ``joint`` (default :func:`joins_batches`) puts real and fake through D as one batch.
    ``reduce_grads(model)``, when given, runs on each network's gradients just before its
    optimizer step (data parallelism: :meth:`minigan.distributed.DataParallel.reduce_grads`).
    """
    xp = devices.get_xp(real)
    if (y_real is None) != (y_fake is None):
        raise ValueError("gan_step takes both y_real and y_fake (a conditional pair) or neither")
    if y_fake is not None:
        set_labels(G, y_fake)
    fake = G.forward(z)

    D.zero_grad()
    if joint is None:
        joint = joins_batches(D)
    if joint:
        if y_real is not None:
            set_labels(D, xp.concatenate([xp.asarray(y_real), xp.asarray(y_fake)]))
        out = D.forward(xp.concatenate([real, fake]))
        half = out.shape[0] // 2  # B rows each (B*m samples each when D packs m)
        out_real, out_fake = out[:half], out[half:]
        l_real, g_real = loss.d_real(out_real)
        l_fake, g_fake = loss.d_fake(out_fake)
        D.backward_weights(xp.concatenate([g_real, g_fake]))
    else:
        out_real, l_real = _d_pass(D, real, y_real, loss.d_real)
        out_fake, l_fake = _d_pass(D, fake, y_fake, loss.d_fake)
    d_loss = l_real + l_fake
    # D's outputs are read before the G step runs D again (a layer may reuse its output buffers)
    stats = {"d_loss": d_loss, "d_real": d_mean_output(out_real, loss.name),
             "d_fake": d_mean_output(out_fake, loss.name)}
    if reduce_grads is not None:
        reduce_grads(D)
    opt_D.step()

    G.zero_grad()
    D.trainable = False
    if y_fake is not None:
        set_labels(D, y_fake)
    try:
        g_loss, g_out = loss.g(D.forward(fake))
        G.backward_weights(D.backward(g_out))  # the noise needs no gradient
    finally:
        D.trainable = True
    if reduce_grads is not None:
        reduce_grads(G)
    opt_G.step()
    stats["g_loss"] = g_loss
    return stats


def _d_pass(D, x, y, loss_fn):
    """One batch through D; its weight gradients are added to ``D.grads``.  Returns (output, loss)."""
    if y is not None:
        set_labels(D, y)
    out = D.forward(x)
    value, grad = loss_fn(out)
    D.backward_weights(grad)
    return out, value
