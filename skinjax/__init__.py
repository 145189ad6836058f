"""skinjax: train and evaluate CNNs that classify photos of skin disease."""
