"""Pretrained weights brought into attn_audit's models: MiniLM (``minilm``) and the BERT
name map (``bert``). Their tokenizers live with the data, in ``attn_audit.data.wordpiece``."""
