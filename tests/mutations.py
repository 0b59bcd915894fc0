"""Planted bugs: each applied alone to a scratch copy of the repository, where the tests
named for it must fail.

    python tests/mutations.py              # every mutation: some minutes
    python tests/mutations.py -k col2im    # those whose name contains "col2im"
    python tests/mutations.py --list       # names, files and tests, without running

A mutation is a file, an exact piece of its text (found exactly once), the text
that replaces it, and the tests that should catch it: a sign flipped in a
gradient, ``=`` for ``+=``, an off-by-one in a kernel, a GAN loss wired to the
wrong formula, an out-of-bounds write in a Numba kernel, ... on every layer and
every conv engine.  The script copies the repository (its tracked and untracked,
not ignored, files) into a temporary folder, runs every named test there once
unchanged (they must pass), then for each mutation writes it, runs its tests
with ``pytest -x -q``, and puts the file back.  It prints one row per mutation:

* ``caught``: the tests failed (pytest exit status 1);
* ``MISSED``: they passed;
* ``ERROR``: pytest could not say (a test id that does not exist, a crash of
  the interpreter, a time-out), or the text to replace is not found once.

and exits 1 unless every mutation is caught.  It is not part of the test suite
(pytest collects ``test_*.py`` only).  Hypothesis draws the ci profile's examples
and does not shrink a failure (``HYPOTHESIS_PROFILE=mutations``).  Python writes
no bytecode in the copy, and Numba compiles into a cache folder of the copy's
own; a mutation of a file with Numba kernels gets a fresh cache folder, so no
mutated kernel is ever loaded for another run (Numba's cache keys on the source
file's modification time and size; the script gives each mutated file a new
time and puts the original's back).  The bounds-checked kernel tests keep their
own cache folder in the copy's ``.pytest_cache``.

When you add a layer, an engine or a kernel, add its mutations here and watch
them fail.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple


def M(name, file, old, new, *tests):
    return Mutation(name, file, old, new, tests)


# test ids used by several mutations
GRAD = "tests/nn/test_layers_grad.py"
DENSE_GRAD = f"{GRAD}::test_dense"
CONV_GRAD = f"{GRAD}::test_conv2d"
CONVT_GRAD = f"{GRAD}::test_conv2d_transpose"
ELEMENTWISE = f"{GRAD}::test_elementwise_and_shape_layers"
BN_GRAD = f"{GRAD}::test_batchnorm_train_after_dense"
BN_REF_GRAD = f"{GRAD}::test_batchnorm_reference_code_train_after_dense"
ELEMENTWISE_REF = f"{GRAD}::test_elementwise_reference_code"
ACCUMULATION = "tests/nn/test_accumulation.py"
FUSION = "tests/nn/test_fusion.py"
FROZEN = "tests/nn/test_frozen.py"
COLUMNS = "tests/nn/test_columns.py"
PATHS = "tests/nn/test_conv_engine_paths.py"
PROJECTION_TWINS = "tests/runtime/test_cpu.py::test_projection_head_kernels_match_reference"
GAN_LOSSES = "tests/test_gan_loss_names.py"
GRADCHECK = "tests/test_gradcheck_standard.py"
KERNELS = "tests/runtime/test_cpu.py"
DROPOUT_KERNELS = (f"{KERNELS}::test_dropout_kernels", f"{KERNELS}::test_dropout_matches_reference")
COL2IM_KERNEL = f"{KERNELS}::test_col2im_matches_reference"
BOUNDS = "tests/runtime/test_compilation.py::test_kernel_tests_pass_with_bounds_checking"
DEFINITION = "tests/nn/test_conv.py::test_conv2d_matches_its_definition"
ADJOINT = "tests/nn/test_conv.py::test_adjoint_identity"

LOSSES, DENSE, CONV = "minigan/losses.py", "minigan/nn/dense.py", "minigan/nn/conv/layers.py"
REF, IM2COL, SPECTRAL = ("minigan/nn/conv/reference.py", "minigan/nn/conv/im2col.py",
                         "minigan/nn/conv/spectral.py")
BN, ACT, MISC = "minigan/nn/batchnorm.py", "minigan/nn/activations.py", "minigan/nn/misc.py"
CPU, OPTIM, SEQ = "minigan/runtime/cpu.py", "minigan/optim.py", "minigan/nn/sequential.py"
ANNOUNCED = "tests/runtime/test_compilation.py::test_the_first_compilation_of_a_minigan_kernel_is_announced_once"
SN = "minigan/nn/spectralnorm.py"
WINOGRAD = "minigan/nn/conv/winograd.py"
WINOGRAD_KERNEL = f"{KERNELS}::test_winograd_transforms_match_reference"
ALPHA8 = f"{KERNELS}::test_winograd_alpha8_transforms_with_several_tiles"
SN_TESTS = "tests/nn/test_spectralnorm.py"
SN_GRAD = f"{SN_TESTS}::test_gradients_with_the_power_iteration_held"

CONV2D_W = '            self.grads["W"][:, :g.C] += eng.weight_grad(cols, dY, g)'
CONVT_W = '            self.grads["W"] += eng.weight_grad(cols, X, g)'
SPECTRAL_TO_IMAGE = "        return plan.image_pixels(self._bmm(Gc, K), Gc.shape[1])"

MUTATIONS = [
    # -- GAN losses wired by name ----------------------------------------------------------
    M("GANLoss bce: g is the saturating loss", LOSSES,
      "            return generator_nonsaturating(out)",
      "            return tuple(-a for a in bce_with_logits(out, 0.0))", GAN_LOSSES),
    M("GANLoss bce: d_fake against target 1", LOSSES,
      "            return bce_with_logits(out, 0.0)", "            return bce_with_logits(out, 1.0)", GAN_LOSSES),
    M("GANLoss hinge: d_real takes the fake side", LOSSES,
      "        return hinge(out, +1)", "        return hinge(out, -1)", GAN_LOSSES),
    M("GANLoss lsgan: g against target 0", LOSSES,
      "            return mse(out, 1.0)\n        return mean_negated(out)",
      "            return mse(out, 0.0)\n        return mean_negated(out)", GAN_LOSSES),
    M("GANLoss hinge: g is the critic's real loss", LOSSES,
      "        return mean_negated(out)", "        return hinge(out, +1)", GAN_LOSSES),
    # -- Dense -------------------------------------------------------------------------------
    M("Dense: dx sign", DENSE,
      '        return dy @ self.params["W"][: self._cache[0].shape[1]].T',
      '        return -(dy @ self.params["W"][: self._cache[0].shape[1]].T)', DENSE_GRAD),
    M("Dense: W assigned, not added", DENSE,
      'self.grads["W"][:C] += x.T @ dy', 'self.grads["W"][:C] = x.T @ dy', ACCUMULATION),
    M("Dense: b assigned, not added", DENSE,
      'self.grads["b"] += dy.sum(axis=0)', 'self.grads["b"][...] = dy.sum(axis=0)', ACCUMULATION),
    M("Dense: frozen dx wrong", DENSE,
      '        return dy @ self.params["W"][: self._cache[0].shape[1]].T',
      '        return dy @ (self.params["W"] if self.trainable else self.grads["W"])[: self._cache[0].shape[1]].T',
      FROZEN),
    # -- SpectralNorm -----------------------------------------------------------------------------
    M("SpectralNorm: <G, W_sn> taken as u^T G v", SN,
      "        lam = (G * W_sn).sum()", "        lam = u @ self.matrix(G) @ v", SN_GRAD),
    M("SpectralNorm: correction sign", SN, "        G -= lam * ", "        G += lam * ", SN_GRAD),
    M("SpectralNorm: W assigned, not added", SN,
      '        self.layer.grads["W"] += G', '        self.layer.grads["W"][...] = G', ACCUMULATION),
    M("SpectralNorm: u updated in eval mode", SN,
      "        sigma, u, v = self._estimate(update=self.training)",
      "        sigma, u, v = self._estimate(update=True)", f"{SN_TESTS}::test_u_moves_in_training_mode_only"),
    M("SpectralNorm: frozen pass runs the raw W", SN,
      "            return self._swapped(W_sn, None, fn, dy)",
      "            return fn(dy)", FROZEN),
    M("SpectralNorm: the raw W not put back", SN,
      '            params["W"], grads["W"] = W, dW', '            grads["W"] = dW',
      f"{SN_TESTS}::test_optimizer_updates_the_raw_weight_in_its_flat_buffer"),
    # -- the conv layers, every engine ----------------------------------------------------------
    M("Conv2D: dx sign", CONV,
      "        return c.engine.to_image(c.weights, dY, c.g)",
      "        return -c.engine.to_image(c.weights, dY, c.g)", CONV_GRAD),
    M("Conv2DTranspose: dx sign", CONV,
      "        return c.engine.to_output(c.weights, cols, c.g)",
      "        return -c.engine.to_output(c.weights, cols, c.g)", CONVT_GRAD),
    M("Conv2D: W assigned, not added", CONV, CONV2D_W, CONV2D_W.replace("+=", "="), ACCUMULATION),
    M("Conv2DTranspose: W assigned, not added", CONV, CONVT_W, CONVT_W.replace("+=", "="), ACCUMULATION),
    M("conv: b assigned, not added", CONV,
      '            self.grads["b"] += self.device.kernel(channel_sums)(dy)',
      '            self.grads["b"][...] = self.device.kernel(channel_sums)(dy)', ACCUMULATION),
    M("Conv2D: W assigned on the spectral path only", CONV, CONV2D_W,
      CONV2D_W.replace("+=", "= (0 if eng.name == 'spectral' else self.grads['W']) +"), ACCUMULATION),
    M("Conv2DTranspose: W assigned on the spectral path only", CONV, CONVT_W,
      CONVT_W.replace("+=", "= (0 if eng.name == 'spectral' else self.grads['W']) +"), ACCUMULATION),
    M("Conv2D: frozen dx wrong", CONV,
      "        return c.engine.to_image(c.weights, dY, c.g)",
      "        return c.engine.to_image(c.weights, dY if self.trainable else dY[::-1], c.g)", FROZEN),
    # reference engine
    M("reference engine: dW sign", REF,
      "        return (dY @ cols.T).reshape(-1, g.C, g.kh, g.kw)",
      "        return (-dY @ cols.T).reshape(-1, g.C, g.kh, g.kw)", CONV_GRAD),
    M("reference engine: adjoint sign", REF,
      "        return col2im((Wm.T @ dY).reshape(g.K, -1, g.P), g)",
      "        return col2im((-Wm.T @ dY).reshape(g.K, -1, g.P), g)", CONV_GRAD),
    M("reference im2col: padding off by one", REF,
      "    xpad = xp.pad(x, ((0, 0), (0, 0), (g.pt, g.pb), (g.pl, g.pr)))",
      "    xpad = xp.pad(x, ((0, 0), (0, 0), (g.pt, g.pb), (g.pl + 1, g.pr)))", COLUMNS),
    M("reference col2im: last tap column dropped", REF,
      "        for j in range(g.kw):\n            xpad[_tap(g, i, j)] +=",
      "        for j in range(g.kw - 1):\n            xpad[_tap(g, i, j)] +=", COLUMNS),
    M("reference col2im: crop off by one", REF,
      "    x = xpad[:, :, g.pt:g.pt + g.H, g.pl:g.pl + g.W]",
      "    x = xpad[:, :, g.pt:g.pt + g.H, g.pl + 1:g.pl + g.W + 1]", COLUMNS),
    # im2col engine
    M("im2col engine: dW sign (one GEMM)", IM2COL,
      "            dW = _batch_major(dY) @ cols.reshape(K, -1).T",
      "            dW = -_batch_major(dY) @ cols.reshape(K, -1).T", CONV_GRAD),
    M("im2col engine: adjoint sign (one GEMM)", IM2COL,
      "            self.xp.matmul(WmT, _batch_major(dY), out=dcols.reshape(g.K, -1))",
      "            self.xp.matmul(-WmT, _batch_major(dY), out=dcols.reshape(g.K, -1))", CONV_GRAD),
    M("im2col engine: adjoint sign (per sample)", IM2COL,
      "            self._bmm(WmT, dY, out=_per_sample(dcols))",
      "            self._bmm(-WmT, dY, out=_per_sample(dcols))", PATHS),
    M("im2col engine: forward sign (per sample)", IM2COL,
      "            y = self._bmm(Wm, _per_sample(cols))", "            y = self._bmm(-Wm, _per_sample(cols))", PATHS),
    M("im2col engine: dW keeps the last chunk only", IM2COL,
      "                dW = part.sum(axis=0) if dW is None else dW + part.sum(axis=0)",
      "                dW = part.sum(axis=0)", PATHS),
    # spectral engine
    M("spectral engine: adjoint sign", SPECTRAL, SPECTRAL_TO_IMAGE,
      "        return plan.image_pixels(-self._bmm(Gc, K), Gc.shape[1])", CONV_GRAD),
    M("spectral engine: adjoint sign [minigan gradcheck]", SPECTRAL, SPECTRAL_TO_IMAGE,
      "        return plan.image_pixels(-self._bmm(Gc, K), Gc.shape[1])", GRADCHECK),
    M("spectral engine: dW sign", SPECTRAL,
      "        return plan.kernel_taps(self._bmm(Gc.transpose(0, 2, 1), X), (O, g.C, g.kh, g.kw))",
      "        return plan.kernel_taps(-self._bmm(Gc.transpose(0, 2, 1), X), (O, g.C, g.kh, g.kw))",
      CONV_GRAD, GRADCHECK),
    M("spectral engine: self-conjugate frequencies counted twice", SPECTRAL,
      "np.where(own[keep], 1.0, 2.0)", "np.where(own[keep], 2.0, 2.0)", DEFINITION),
    M("spectral engine: kernel spectrum conjugated", SPECTRAL,
      "kernel[i, k, ah * g.sw + aw] = _planes(_angles(freqs, [jh], [jw], P), 1)[:, 0]",
      "kernel[i, k, ah * g.sw + aw] = _planes(_angles(freqs, [jh], [jw], P), -1)[:, 0]", DEFINITION),
    # -- BatchNorm -----------------------------------------------------------------------------
    M("BatchNorm: gamma assigned, not added", BN,
      '            self.grads["gamma"] += dgamma', '            self.grads["gamma"] = dgamma', ACCUMULATION),
    M("BatchNorm: beta assigned, not added", BN,
      '            self.grads["beta"] += dbeta', '            self.grads["beta"] = dbeta', ACCUMULATION),
    M("BatchNorm reference: dx sign", BN, "    dx = dy - dx\n", "    dx = dx - dy\n", BN_REF_GRAD),
    M("BatchNorm reference: mean term dropped", BN, "    dx += (dbeta / m).reshape(v)\n", "", BN_REF_GRAD),
    M("BatchNorm Numba: mean terms dropped", CPU,
      "xr[i] = k[i] * (d - mb[i] - hr[i] * mg[i])", "xr[i] = k[i] * d", BN_GRAD,
      f"{KERNELS}::test_batchnorm_kernels_match_reference"),
    M("BatchNorm Numba: the absorbed ReLU's derivative left out of dx", CPU,
      "                d = _through_leaky(dr[i], hr[i], g[i], bt[i], slope)\n                xr[i] = k[i] * (d - ",
      "                xr[i] = k[i] * (dr[i] - ", FUSION, f"{KERNELS}::test_batchnorm_with_leaky_relu_matches_reference"),
    M("BatchNorm reference: the absorbed ReLU's mask without beta", BN,
      "    y = xh * gamma.reshape(v) + beta.reshape(v)\n", "    y = xh * gamma.reshape(v)\n",
      f"{KERNELS}::test_batchnorm_with_leaky_relu_matches_reference"),
    # -- activations, dropout, LabelJoin ----------------------------------------------------------
    M("ReLU: dx sign", ACT, "        return dy * mask", "        return -dy * mask", ELEMENTWISE),
    M("Tanh: dx sign", ACT, "        return dy * (1 - y * y)", "        return dy * (y * y - 1)", ELEMENTWISE),
    M("Sigmoid: dx sign", ACT, "        return dy * y * (1 - y)", "        return dy * y * (y - 1)", ELEMENTWISE),
    M("LeakyReLU reference: slope 0.2 in the gradient", ACT,
      "where(x > 0, dy, dy * dy.dtype.type(slope))", "where(x > 0, dy, dy * dy.dtype.type(0.2))",
      ELEMENTWISE_REF),
    M("LeakyReLU Numba: slope 0.2 in the gradient", CPU,
      "dx[i] = d if x[i] > 0 else d * slope", "dx[i] = d if x[i] > 0 else d * 0.2", ELEMENTWISE,
      f"{KERNELS}::test_leaky_relu_matches_reference"),
    M("Dropout reference: gradient scale 1 - p", MISC,
      "where(keep, dy * dy.dtype.type(1.0 / (1.0 - p)), dy.dtype.type(0))",
      "where(keep, dy * dy.dtype.type(1.0 - p), dy.dtype.type(0))", ELEMENTWISE_REF),
    M("Dropout Numba: forward scale 1 - p", CPU,
      "threshold, x.dtype.type(1.0 / (1.0 - p))", "threshold, x.dtype.type(1.0 - p)", *DROPOUT_KERNELS),
    M("Dropout Numba: gradient unscaled", CPU,
      "keep.reshape(-1), dy.dtype.type(1.0 / (1.0 - p))", "keep.reshape(-1), dy.dtype.type(1.0)",
      *DROPOUT_KERNELS),
    M("LabelJoin: dx off by one channel", "minigan/nn/conditioning.py",
      "dy[:, : shape[1]]", "dy[:, 1: shape[1] + 1]", GRADCHECK),
    M("DiscreteCode: the code passes its gradient", "minigan/nn/latent.py",
      "        dz[:, : self.num_codes] = 0\n", "", GRADCHECK, "tests/nn/test_latent.py"),
    M("DiscreteCode: code from the argmin", "minigan/nn/latent.py",
      "return xp.argmax(z[:, :K], axis=1)", "return xp.argmin(z[:, :K], axis=1)", "tests/nn/test_latent.py"),
    M("DiscreteCode: weighted codes ignore their probabilities", "minigan/nn/latent.py",
      "xp.argmax(log_p + gumbel, axis=1)", "xp.argmax(gumbel, axis=1)", "tests/nn/test_latent.py"),
    M("DiscreteCode: the lower tail for the upper", "minigan/nn/latent.py",
      "xp.where(z >= 0, 0.5 * erfc, 1.0 - 0.5 * erfc)", "xp.where(z >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)",
      "tests/nn/test_latent.py"),
    M("LabelProjection: dx without the embedding", "minigan/nn/conditioning.py",
      "return dy * (w.T + _m_hot(rows, E.shape[0], dy.dtype) @ E)", "return dy * w.T", GRADCHECK,
      "tests/nn/test_conditioning.py", PROJECTION_TWINS),
    M("LabelProjection: E's gradient assigned, not added", "minigan/nn/conditioning.py",
      'self.grads["E"] += dE', 'self.grads["E"] = dE', ACCUMULATION),
    M("LabelProjection: every row trains on every sample", "minigan/nn/conditioning.py",
      "(dy * _m_hot(rows, R, x.dtype)).T @ x", "(dy * x.dtype.type(1)).T @ x",
      "tests/nn/test_conditioning.py", PROJECTION_TWINS),
    M("Winograd: the kept U returned after W changed", WINOGRAD,
      " and self.xp.array_equal(last[1], W):", ":",
      "tests/nn/test_conv_winograd.py::test_the_kept_weight_transform_follows_the_weights"),
    M("row bias twin: the absorbed ReLU's slope ignored", CPU,
      "            row[c] = t if t > 0 else t * slope", "            row[c] = t",
      "tests/runtime/test_cpu.py::test_add_channel_bias_matches_reference", FUSION),
    M("Sequential: an absorbed ReLU run a second time as its own layer", SEQ,
      "            i += 2 if fused else 1", "            i += 1", FUSION),
    M("Dense: dW and db from the absorbed ReLU's gradient, not through its derivative", DENSE,
      "        dy = through_relu(self, dy, relu)\n", "", FUSION),
    M("conv layers: an absorbed ReLU's derivative from its output's magnitude", ACT,
      "    return dz if relu is None else layer.device.kernel(leaky_relu_grad)(dz, *relu)",
      "    return dz if relu is None else dz * relu[0]", FUSION),
    # -- a LabelJoin absorbed by the Dense or Conv2D after it -------------------------------
    M("Conv2D, absorbed join: the label planes' taps on the padding counted", CONV,
      "        return ((rows >= 0) & (rows < g.H)).astype(dt), ((cols >= 0) & (cols < g.W)).astype(dt)",
      "        return (rows < g.H).astype(dt), ((cols >= 0) & (cols < g.W)).astype(dt)", FUSION),
    M("Conv2D, absorbed join: the label maps without the bias", CONV,
      "        return self.xp.ascontiguousarray(T if b is None else T + b[:, None, None])",
      "        return self.xp.ascontiguousarray(T)", FUSION),
    M("Conv2D, absorbed join: the label planes' weight gradient left out", CONV,
      "self._label_weight_grad(label_sums(dy, *joined), g)", "0", FUSION),
    M("Conv2D, absorbed join: the label planes' weight gradient before the ReLU's derivative", CONV,
      "        dy = through_relu(self, dy, relu)\n        dY = eng.output_side(dy, g)\n",
      "        dY = eng.output_side(through_relu(self, dy, relu), g)\n", FUSION),
    M("Dense, absorbed join: the labels' rows without the bias", DENSE,
      "labelled = (W[C:] if b is None else W[C:] + b, joined[0])", "labelled = (W[C:], joined[0])", FUSION),
    M("Dense, absorbed join: dx from the last rows of W", DENSE,
      '        return dy @ self.params["W"][: self._cache[0].shape[1]].T',
      '        return dy @ self.params["W"][-self._cache[0].shape[1]:].T', FUSION),
    M("label sums: every sample counted for label 0", "minigan/nn/conditioning.py",
      "    onehot = (labels[None, :] == xp.arange(K)[:, None]).astype(dy.dtype)",
      "    onehot = (0 * labels[None, :] == xp.arange(K)[:, None]).astype(dy.dtype)", FUSION),
    M("Sequential: the LabelJoin run as its own layer too", SEQ,
      "                join, i = self.layers[i], i + 1", "                join, i = self.layers[i], i", FUSION),
    M("label bias twin: every sample takes label 0's map", CPU,
      "        row, t = y[n], T[labels[n]]", "        row, t = y[n], T[0]",
      f"{KERNELS}::test_add_label_bias_matches_reference", FUSION),
    M("label bias twin: the absorbed ReLU's slope ignored", CPU,
      "            v = row[q] + t[q]\n            row[q] = v if v > 0 else v * slope",
      "            v = row[q] + t[q]\n            row[q] = v",
      f"{KERNELS}::test_add_label_bias_matches_reference", FUSION),
    M("channel bias twin: every channel takes the first channel's bias", CPU,
      "        v = b[nc % C]\n", "        v = b[0]\n",
      "tests/runtime/test_cpu.py::test_add_channel_bias_matches_reference"),
    M("projection head twin: a packed row's later samples left out", CPU,
      "        for j in range(1, rows.shape[1]):\n            r = rows[n, j]\n            for f in range(F):\n"
      "                acc += x[n, f] * E[r, f]",
      "        for j in range(1, 1):\n            r = rows[n, j]\n            for f in range(F):\n"
      "                acc += x[n, f] * E[r, f]", PROJECTION_TWINS),
    M("projection head twin: dx without the embedding", CPU,
      "dx[n, f] = d * (w[f] + E[r0, f])", "dx[n, f] = d * w[f]", PROJECTION_TWINS),
    M("projection head twin: E's rows assigned, not summed over samples", CPU,
      "                er = dE[rows[n, j], lo:hi]\n                for q in range(hi - lo):\n"
      "                    er[q] += d * xr[q]",
      "                er = dE[rows[n, j], lo:hi]\n                for q in range(hi - lo):\n"
      "                    er[q] = d * xr[q]", PROJECTION_TWINS),
    M("LabelProjection: packed samples share one block of E", "minigan/nn/conditioning.py",
      "xp.arange(m)[None, :] * self.num_classes", "0 * xp.arange(m)[None, :]", GRADCHECK,
      "tests/nn/test_conditioning.py"),
    M("k-means: centres not moved", "minigan/data/clusters.py",
      "        centres[full] = sums[full] / counts[full, None]\n", "", "tests/data/test_clusters.py"),
    M("Sequential: frozen layers skipped in backward", SEQ,
      "        for layer, _, _ in reversed(self._need_cache()):\n            dy = layer.backward(dy)",
      "        for layer, _, _ in reversed(self._need_cache()):\n"
      "            if layer.trainable or not layer.params:\n                dy = layer.backward(dy)", FROZEN),
    # -- optimizers ---------------------------------------------------------------------------------
    M("Adam reference: no bias correction", OPTIM,
      "    c1, c2 = 1 - b1 ** t, 1 - b2 ** t", "    c1, c2 = 1.0, 1.0",
      "tests/test_optim.py::test_optimizers_on_every_device",
      f"{KERNELS}::test_adam_update_matches_reference"),
    M("Adam Numba: no bias correction", CPU,
      "    c1, c2 = 1 - b1 ** t, 1 - b2 ** t", "    c1, c2 = 1.0, 1.0", "tests/test_optim.py::test_adam_step_by_step"),
    # -- Numba kernels: off by one, out of bounds ------------------------------------------------
    M("Numba im2col: last column inside the image dropped", CPU,
      "hi = max(lo, min(Wo, (W - 1 + pl - j) // sw + 1))", "hi = max(lo, min(Wo, (W - 1 + pl - j) // sw))",
      f"{KERNELS}::test_im2col_matches_reference", COLUMNS),
    M("Numba col2im: a row's last gathered column dropped", CPU,
      "for qq in range((pl - b + sw - 1) // sw if pl > b else 0, Wq):",
      "for qq in range((pl - b + sw - 1) // sw if pl > b else 0, Wq - 1):", COL2IM_KERNEL, COLUMNS),
    M("Numba col2im: zeros right of the windows start a stride late", CPU,
      "for w in range(max(0, Wq * sw - pl), W):", "for w in range(max(0, Wq * sw - pl + sw), W):",
      COL2IM_KERNEL, COLUMNS),
    M("Numba merge_phases: off by one", CPU,
      "for l in range(min(Wp, (W - b + sw - 1) // sw)):", "for l in range(min(Wp, (W - b + sw - 1) // sw) - 1):",
      f"{KERNELS}::test_phase_split_and_merge_match_reference"),
    M("Numba spectrum transpose: block end off by one", CPU,
      "            c1 = min(C, c0 + _SPEC_BLOCK)", "            c1 = min(C, c0 + _SPEC_BLOCK - 1)",
      f"{KERNELS}::test_spectrum_transposes_match_reference"),
    M("Numba col2im: scratch one element short (out-of-bounds write)", CPU,
      "        acc = np.empty(sh * sw * nj * S, cols.dtype)",
      "        acc = np.empty(sh * sw * nj * S - 1, cols.dtype)",
      BOUNDS),
    M("Numba im2col: writes one past a column row (out-of-bounds write)", CPU,
      "                for ow in range(hi, Wo):", "                for ow in range(hi, Wo + 1):", BOUNDS),
    # -- the Winograd engine (the lean pair's k4 s2 layers) ---------------------------------------
    M("Winograd engine: sub-kernel taps transposed", WINOGRAD,
      "w = w.reshape(O, p.C, p.rh, p.sh, p.rw, p.sw).transpose(2, 4, 3, 5, 1, 0)",
      "w = w.reshape(O, p.C, p.rh, p.sh, p.rw, p.sw).transpose(4, 2, 3, 5, 1, 0)", DEFINITION),
    M("Winograd engine: adjoint sign", WINOGRAD,
      "dV = self._points(dM, U.transpose(0, 2, 1),", "dV = self._points(dM, -U.transpose(0, 2, 1),", CONV_GRAD),
    M("Winograd engine: dW sign", WINOGRAD,
      "dU = self._bmm(V.transpose(1, 2, 0), dM.transpose(1, 0, 2))",
      "dU = -self._bmm(V.transpose(1, 2, 0), dM.transpose(1, 0, 2))", CONV_GRAD),
    M("Winograd engine: the last partial tile dropped", WINOGRAD,
      "mh, mw, -(-g.Ho // mh), -(-g.Wo // mw)", "mh, mw, g.Ho // mh or 1, -(-g.Wo // mw)", DEFINITION),
    M("Winograd reference: patches assigned, not added, into the phase grids", WINOGRAD,
      "X[:, u:u + p.mh * p.th:p.mh, v:v + p.mw * p.tw:p.mw] += d[:, :, u, :, v]",
      "X[:, u:u + p.mh * p.th:p.mh, v:v + p.mw * p.tw:p.mw] = d[:, :, u, :, v]", WINOGRAD_KERNEL),
    M("Winograd kernel: image patch read one column to the left", CPU,
      "d[u, base + c] = x[n, c, h, w]", "d[u, base + c] = x[n, c, h, w - 1]",
      WINOGRAD_KERNEL),
    M("Winograd kernel: output tile assigned, not summed", CPU,
      "acc[o] += coef * e1[i, f, o]", "acc[o] = coef * e1[i, f, o]", WINOGRAD_KERNEL),
    M("Winograd kernel: weight gradient skips the first point", CPU,
      "            for xi in range(KG.shape[0]):\n                coef = KG[xi, d]",
      "            for xi in range(1, KG.shape[0]):\n                coef = KG[xi, d]", WINOGRAD_KERNEL),
    M("Winograd kernels: one term of the 8-row sweep left out", CPU,
      "        b3[q] = (c30 * x0 + c31 * x1 + c32 * x2 + c33 * x3", "        b3[q] = (c30 * x0 + c31 * x1 + c32 * x2",
      WINOGRAD_KERNEL, ALPHA8),
    M("Winograd kernel, alpha 8: image patch read one row up", CPU,
      "d[u, 0, base + c] = x[n, c, h, w]", "d[u, 0, base + c] = x[n, c, h - 1, w]", WINOGRAD_KERNEL, ALPHA8),
    M("Winograd kernel, alpha 8: overlapping patches assigned, not added", CPU,
      "                        g[q] += pu[q]", "                        g[q] = pu[q]", WINOGRAD_KERNEL, ALPHA8),
    M("Winograd kernel, alpha 8: the output tile's last column dropped", CPU,
      "            for j in range(min(mw, Wo - tj * mw)):\n                zr = z[i * 8 + j, 0]",
      "            for j in range(min(mw, Wo - tj * mw) - 1):\n                zr = z[i * 8 + j, 0]",
      WINOGRAD_KERNEL, ALPHA8),
    M("Winograd kernel, alpha 8: dy read past the tile's outputs", CPU,
      "        d = np.zeros((64, 1, O), dy.dtype)", "        d = np.ones((64, 1, O), dy.dtype)",
      WINOGRAD_KERNEL, ALPHA8),
    # the line a fresh install's first train step prints while its kernels compile
    M("compilation note: said at every compilation", "minigan/runtime/numba_cache.py",
      "if not self.said and fn is not None", "if fn is not None", ANNOUNCED),
    M("compilation note: said for another package's compilation", "minigan/runtime/numba_cache.py",
      '(fn.__module__ or "").startswith("minigan.")', '(fn.__module__ or "").startswith("")', ANNOUNCED),
    M("compilation note: not listened for while training", "minigan/cli/train.py",
      "with _stop_on_ctrl_c(trainer), _compilation_note(cfg):", "with _stop_on_ctrl_c(trainer):",
      "tests/runtime/test_compilation.py::test_minigan_train_announces_compilation_above_its_progress_bar"),
]


# -- the trainer's plumbing, the sampler and the data layer -------------------------------------
# Labels out of step with their images, batches sliced wrong, keys reused or not advanced,
# packs that mix samples, the live G where the average is named, a resume that restarts.
# tests/test_plumbing_census.py runs these ("plumbing" in every name) in the normal suite.
PLUMB = "tests/gan/test_plumbing.py"


def plumb(test, *cases):
    """Test ids of tests/gan/test_plumbing.py: ``test`` with each parametrisation of ``cases``."""
    return tuple(f"{PLUMB}::{test}[{c}]" for c in cases) if cases else (f"{PLUMB}::{test}",)


STEPS = "test_every_step_draws_what_the_permutation_and_the_keys_say"
TRAINER, STEP, SAMPLER = "minigan/gan/trainer.py", "minigan/gan/step.py", "minigan/gan/sampler.py"
NOISE_KEY = "randomness.key(cfg.seed, randomness.NOISE, self.global_step)"
LABELS_KEY = "randomness.key(cfg.seed, randomness.LABELS, self.global_step)"

STALE_AVERAGE = ("tests/gan/test_averaging.py::"
                 "test_a_checkpoint_within_an_epoch_gets_the_averages_batchnorm_estimates_on_loading")

PLUMBING_MUTATIONS = [
    # the bug that passed every test before: D told the labels of the epoch's unshuffled positions
    M("plumbing/trainer: conditional D gets labels by position, not the images' own", TRAINER,
      "return real, z, self.labels_on_device[idx], y_fake",
      "return real, z, self.labels_on_device[self.step_in_epoch * B:(self.step_in_epoch + 1) * B], y_fake",
      *plumb(STEPS, "cpu-conditional")),
    M("plumbing/trainer: real images given the next images' cluster ids", TRAINER,
      "return real, z, self.labels_on_device[idx], self.G.layers[0].codes(z)",
      "return real, z, self.labels_on_device[(idx + 1) % len(self.data)], self.G.layers[0].codes(z)",
      *plumb(STEPS, "cpu-self-conditioned")),
    M("plumbing/trainer: cluster ids of the images in reverse order", TRAINER,
      "self.labels = self.cluster(self.data, cfg.clusters, cfg.seed)",
      "self.labels = self.cluster(self.data, cfg.clusters, cfg.seed)[::-1]",
      *plumb(STEPS, "cpu-packed")),
    M("plumbing/trainer: the epoch's batches start one image late", TRAINER,
      "return perm[: self.steps_per_epoch * B].reshape(self.steps_per_epoch, B)",
      "return perm[1: self.steps_per_epoch * B + 1].reshape(self.steps_per_epoch, B)",
      *plumb("test_a_batch_that_does_not_fill_the_epoch_leaves_the_rest_out", "conditional")),
    M("plumbing/trainer: batches strided through the permutation", TRAINER,
      "return perm[: self.steps_per_epoch * B].reshape(self.steps_per_epoch, B)",
      "return perm[: self.steps_per_epoch * B].reshape(B, self.steps_per_epoch).T",
      *plumb(STEPS, "cpu-plain")),
    M("plumbing/trainer: step k takes batch k - 1", TRAINER,
      "self.train_step(*self.step_inputs(order[self.step_in_epoch]))",
      "self.train_step(*self.step_inputs(order[self.step_in_epoch - 1]))", *plumb(STEPS, "cpu-plain")),
    M("plumbing/trainer: every epoch in the first epoch's order", TRAINER,
      "default_rng([self.config.seed, epoch])", "default_rng([self.config.seed, 0])",
      *plumb(STEPS, "cpu-plain")),
    M("plumbing/trainer: noise drawn with the fake labels' key", TRAINER, NOISE_KEY,
      NOISE_KEY.replace("NOISE", "LABELS"), *plumb(STEPS, "cpu-conditional")),
    M("plumbing/trainer: fake labels drawn with the noise's key", TRAINER, LABELS_KEY,
      LABELS_KEY.replace("LABELS", "NOISE"), *plumb(STEPS, "cpu-conditional")),
    M("plumbing/trainer: noise key restarts every epoch", TRAINER, NOISE_KEY,
      NOISE_KEY.replace("global_step", "step_in_epoch"), *plumb(STEPS, "cpu-plain")),
    M("plumbing/trainer: fake labels key advanced once an epoch", TRAINER, LABELS_KEY,
      LABELS_KEY.replace("global_step", "epoch"), *plumb(STEPS, "cpu-conditional")),
    M("plumbing/trainer: fake labels never ask for a 9", TRAINER,
      "models.NUM_CLASSES)\n        return real, z", "models.NUM_CLASSES - 1)\n        return real, z",
      *plumb(STEPS, "cpu-conditional")),
    M("plumbing/trainer: a resumed run restarts its epoch", TRAINER,
      "self.epoch, self.step_in_epoch = epoch, step", "self.epoch, self.step_in_epoch = epoch, 0",
      *plumb("test_a_resumed_run_draws_what_an_uninterrupted_one_draws", "cpu-plain-7")),
    M("plumbing/trainer: a checkpoint records the start of its epoch", TRAINER,
      '"step_in_epoch": self.step_in_epoch,', '"step_in_epoch": 0,',
      *plumb("test_a_resumed_run_draws_what_an_uninterrupted_one_draws", "cpu-self-conditioned-7")),
    M("plumbing/trainer: pictures drawn by the live G beside an average", TRAINER,
      "        G = self.drawing_generator()\n", "        G = self.G\n",
      *plumb("test_pictures_and_checkpoints_come_from_the_generator_the_config_names", "cpu-average")),
    M("plumbing/trainer: the average's scores taken from the live G", TRAINER,
      "scores = score_generator(self.drawing_generator(),", "scores = score_generator(self.G,",
      *plumb("test_scores_come_from_the_average_and_the_live_generator_beside_it")),
    M("plumbing/trainer: the conditional grid's rows mix digits", TRAINER,
      "np.repeat(np.arange(models.NUM_CLASSES), GRID_COLUMNS)",
      "np.tile(np.arange(models.NUM_CLASSES), GRID_COLUMNS)",
      *plumb("test_pictures_and_checkpoints_come_from_the_generator_the_config_names",
             "cpu-conditional-average")),
    M("plumbing/data: MNIST labels one image ahead under --limit", TRAINER,
      "x, y = x[:limit], y[:limit]", "x, y = x[:limit], y[1:limit + 1]",
      *plumb("test_mnist_images_keep_each_label_with_its_image", "cpu")),
    M("plumbing/data: mixture points not drawn with the run's seed", TRAINER,
      "np.random.default_rng([seed, 2])", "np.random.default_rng([0, 2])",
      *plumb("test_a_mixture_run_trains_on_the_points_of_its_seed")),
    M("plumbing/data: k-means ids handed out in reverse", "minigan/data/clusters.py",
      "    return centres, assign\n", "    return centres, assign[::-1]\n",
      *plumb("test_the_cluster_ids_are_the_k_means_of_the_training_images")),
    M("plumbing/step: D's joint batch labelled fakes first", STEP,
      "set_labels(D, xp.concatenate([xp.asarray(y_real), xp.asarray(y_fake)]))",
      "set_labels(D, xp.concatenate([xp.asarray(y_fake), xp.asarray(y_real)]))",
      *plumb(STEPS, "cpu-conditional")),
    M("plumbing/step: G's step judged with the real images' labels", STEP,
      "    if y_fake is not None:\n        set_labels(D, y_fake)",
      "    if y_fake is not None:\n        set_labels(D, y_real)", *plumb(STEPS, "cpu-conditional")),
    M("plumbing/step: D's joint batch puts the fakes first", STEP,
      "out = D.forward(xp.concatenate([real, fake]))", "out = D.forward(xp.concatenate([fake, real]))",
      *plumb(STEPS, "cpu-plain")),
    M("plumbing/pack: a pack takes samples a batch apart", "minigan/gan/mixture_models.py",
      "        return x.reshape(x.shape[0] // self.m, self.m * x.shape[1])",
      "        return x.reshape(self.m, x.shape[0] // self.m, x.shape[1]).transpose(1, 0, 2)"
      ".reshape(x.shape[0] // self.m, self.m * x.shape[1])", *plumb(STEPS, "cpu-packed-plain")),
    M("plumbing/sampler: the live G loaded for the average", SAMPLER,
      'key = "G_ema" if averaged and', 'key = "G_ema" if not averaged and',
      *plumb("test_the_sampler_draws_from_the_average_unless_told_live", "plain")),
    M("plumbing/sampler: noise of another seed", SAMPLER,
      "noise(model, n, seed, models.input_width(G))", "noise(model, n, seed + 1, models.input_width(G))",
      *plumb("test_the_sampler_draws_from_the_average_unless_told_live", "plain")),
    M("plumbing/sampler: labels reversed within each batch", SAMPLER,
      "set_labels(G, dev.asarray(y[i:i + batch_size]))", "set_labels(G, dev.asarray(y[i:i + batch_size][::-1]))",
      *plumb("test_the_sampler_gives_each_sample_its_own_label_across_batches")),
    M("plumbing/trainer: a mid-epoch checkpoint says its average's statistics are estimated", TRAINER,
      '"estimated" if self.ema.estimated else "stale"', '"estimated"', STALE_AVERAGE),
    M("plumbing/sampler: a mid-epoch average drawn with the statistics it was stored with", SAMPLER,
      'meta.get("g_ema_batchnorm") == "stale"', 'meta.get("g_ema_batchnorm") == "none"', STALE_AVERAGE),
    M("plumbing/sampler: a mid-epoch average's statistics estimated on seed 0's noise", SAMPLER,
      'int(config.get("seed", 0)))', '0)', STALE_AVERAGE),
]
MUTATIONS += PLUMBING_MUTATIONS


# -- running --------------------------------------------------------------------------------

def _files():
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def _copy_tree(dest: pathlib.Path):
    for f in _files():
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)


def _pytest(tree, tests, cache, timeout):
    """``(exit status, output)`` of ``pytest -x -q tests`` in ``tree``; a negative status is a signal."""
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_CACHE_DIR=str(cache), PYTHONDONTWRITEBYTECODE="1")
    env["HYPOTHESIS_PROFILE"] = "mutations"  # ci's examples, no shrinking of a failure
    env.pop("NUMBA_BOUNDSCHECK", None)
    try:
        res = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", *tests], cwd=tree, env=env,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, f"timed out after {timeout} s\n{(e.stdout or b'')[-2000:]!r}"
    return res.returncode, res.stdout + res.stderr


def _verdict(rc):
    if rc == 1:
        return "caught"
    if rc == 0:
        return "MISSED"
    return "ERROR"


def run(mutations, timeout, verbose, out=print):
    results = []
    with tempfile.TemporaryDirectory(prefix="minigan-mutations-") as tmp:
        tmp = pathlib.Path(tmp)
        tree, shared_cache = tmp / "tree", tmp / "numba-cache"
        _copy_tree(tree)
        tests = list(dict.fromkeys(t for m in mutations for t in m.tests))
        out(f"scratch copy: {tree}\nthe named tests on the unchanged copy ({len(tests)} ids) ...")
        t0 = time.time()
        rc, log = _pytest(tree, tests, shared_cache, timeout * 4)
        if rc != 0:
            out(log[-4000:])
            out(f"the tests do not pass on the unchanged copy (exit status {rc}): nothing to compare with")
            return 2
        out(f"they pass ({time.time() - t0:.0f} s)\n")
        width = max(len(m.name) for m in mutations)
        out(f"{'mutation':<{width}}  {'result':<7}{'time':>6}  tests")
        for i, m in enumerate(mutations):
            path = tree / m.file
            text = path.read_text()
            t0 = time.time()
            if text.count(m.old) != 1:
                verdict, rc, log = "ERROR", None, f"the text to replace occurs {text.count(m.old)} times in {m.file}"
            else:
                stat = path.stat()
                path.write_text(text.replace(m.old, m.new))
                now = max(time.time_ns(), stat.st_mtime_ns + 1_000_000_000)
                os.utime(path, ns=(now, now))  # a time of its own: no cache takes it for the original
                cache = tmp / f"numba-cache-{i}" if "njit" in text else shared_cache
                try:
                    rc, log = _pytest(tree, m.tests, cache, timeout)
                finally:
                    path.write_text(text)
                    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
                    if cache is not shared_cache:
                        shutil.rmtree(cache, ignore_errors=True)
                verdict = _verdict(rc)
                if verdict == "ERROR":
                    log = f"pytest exit status {rc}\n{log}"
            results.append((m, verdict))
            out(f"{m.name:<{width}}  {verdict:<7}{time.time() - t0:>5.0f}s  {' '.join(m.tests)}")
            if verdict != "caught" or verbose:
                out("    " + "\n    ".join(log.strip().splitlines()[-12:]))
    caught = sum(v == "caught" for _, v in results)
    out(f"\n{caught} of {len(results)} mutations caught"
        + ("" if caught == len(results) else
           f"; not caught: {', '.join(m.name for m, v in results if v != 'caught')}"))
    return 0 if caught == len(results) else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", dest="pattern", default="", help="only the mutations whose name contains this")
    p.add_argument("--list", action="store_true", help="list the mutations and their tests, run nothing")
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed for one mutation's tests")
    p.add_argument("-v", "--verbose", action="store_true", help="show pytest's last lines for every mutation")
    args = p.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.pattern.lower() in m.name.lower()]
    if not chosen:
        p.error(f"no mutation's name contains {args.pattern!r}")
    if args.list:
        for m in chosen:
            print(f"{m.name}\n    {m.file}\n    {' '.join(m.tests)}")
        return 0
    return run(chosen, args.timeout, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
