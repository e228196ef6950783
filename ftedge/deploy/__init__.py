"""The deploy kit written into every artifact folder: use it without ftedge or torch.

`kit.write_deploy_kit(folder, manifest)` writes folder/deploy/: a standalone infer.py per
runtime (its preprocessing bit for bit ftedge's), labels.txt, a Triton model repository, for
TensorRT a DeepStream nvinfer config, and a README with the exact commands and contract.
`deepstream.deepstream_style_preprocess` emulates the DeepStream config so its accuracy can be
measured. This file imports nothing: the templates/ pieces are imported by ftedge's lower layers
(the image decoder, the VNNI check), and importing them must not pull in the kit writer.
"""
