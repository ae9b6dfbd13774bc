"""Training objectives: segmentation, MS-TKD, DMLD, content/GSME, adversarial and MAG-MS losses.

Each module holds one idea; `objective` adds them up. This package init stays empty so that
`mstkd.losses.config` can be imported (by the experiment config) without importing torch.
"""
