"""The learned hand-mesh network (issue 10): MobRecon (CVPR 2022) with Tang et al.'s (ICCV 2021) alignment
refinement, over a mesh hierarchy built here from the hand template.

Modules: ``hierarchy`` (decimation, up-sampling, spirals; numpy), ``template`` (Anny's hand at 778 vertices, or the
user's MANO), ``mobrecon`` (the network, torch), ``checkpoint`` (the authors' released weights), ``counts``
(parameters and multiply-adds against the paper's table). ``python -m inference_server.hand_mesh --help``.
"""
