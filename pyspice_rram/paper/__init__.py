"""The seed paper's experiments, ablation studies and the main job's steps.

Code that reproduces Choi et al., *Neural Network Training Acceleration With RRAM-Based
Hybrid Synapses*, Front. Neurosci. 15:690418 (2021), and the demonstration steps of
``pyspice-rram run``; it sits on top of the layers (:mod:`pyspice_rram.device`,
:mod:`~pyspice_rram.calibration`, :mod:`~pyspice_rram.circuit`,
:mod:`~pyspice_rram.surrogate`, :mod:`~pyspice_rram.network`) and uses their public names
only; no layer imports it.

* :mod:`.experiments` -- the figure sweeps (``pyspice-rram reproduce``), :data:`PAPER_BASE`
  and :data:`STOCHASTIC_BASE`, and :func:`.experiments.demo`, the training step of the main
  job (FP, single and hybrid networks);
* :mod:`.ablation` -- ablation studies from TOML files (``pyspice-rram ablation``);
* :mod:`.crossbar_step` -- :func:`.crossbar_step.demo`, the crossbar step of the main job
  (a small layer of the fitted card in ngspice and MNA);
* :mod:`.surrogate_step` -- :func:`.surrogate_step.demo`, the surrogate step of the main job
  (training through the tile surrogate, check against ngspice).
"""
