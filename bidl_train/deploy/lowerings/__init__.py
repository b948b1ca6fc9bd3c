"""How each family of modules lowers for deployment, one module per family.

Importing this package registers bidl-train's lowerings in the registries
of :mod:`..lower` (``LAYER_LOWERINGS``, ``OP_LOWERINGS``,
``NEURON_LOWERINGS``) and :mod:`..nir_graph` (``NIR_LOWERINGS``). These
modules import the layers they lower, never the other way round (``deploy``
sits above ``models``, ``layers`` and ``neurons``), and a layer from
another package registers its own lowering in its own code the same way::

    from bidl_train.deploy import LAYER_LOWERINGS

    @LAYER_LOWERINGS.register(MyLayer)
    def lower_my_layer(lowerer, module, source, state_path):
        lowerer.stateless(module.fc, f'{source}.fc')   # stateless parts
        lowerer.neuron(module.neuron, f'{source}.neuron', state_path)

``source`` is the module's path in the model (for messages and spike
names), ``state_path`` the path of its state in ``model.step``'s state
tree; :class:`~..lower.Lowerer` lists what a lowering may call.
"""
from . import torch_ops, neurons, layers, plastic  # noqa: F401
from . import backbones, resnet, sew_resnet, heads  # noqa: F401
