"""Networks: MST-KDNet (teacher and student), its GSME discriminator, and MAG-MS."""
