"""Sub-commands of ``deepsphere-gen`` (one module each, see ``deepsphere_gen.cli``)."""
