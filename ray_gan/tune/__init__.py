"""Style via weights: fine-tune a base generator onto a new style, blend two generators."""
