"""learnkit.text: tokenization, language-model and classifier loaders, AWD-LSTM, the ULMFiT flow, generation.

``from learnkit.text import *`` brings the core's public API (``from learnkit import *``) and the text names:

>>> from learnkit.text import *
>>> dls_lm = TextDataLoaders.from_df(df, text_col="text", is_lm=True, valid_pct=0.1)          # doctest: +SKIP
>>> lm = language_model_learner(dls_lm, AWD_LSTM, drop_mult=0.3, metrics=[accuracy, Perplexity()])  # doctest: +SKIP
>>> lm.fit_one_cycle(1, 2e-2); lm.save_encoder("enc")                                      # doctest: +SKIP
>>> dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", text_vocab=dls_lm.vocab)  # doctest: +SKIP
>>> learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, metrics=accuracy)        # doctest: +SKIP
>>> learn.load_encoder("enc"); learn.fine_tune(4, 1e-2); learn.predict("I really liked this one")  # doctest: +SKIP
"""

from .. import *
from .. import __all__ as _core_all
from ..data.external import URLs, untar_data
from ..data.getters import get_text_files
from ..metrics import Perplexity, accuracy
from ..models.registry import create_model, list_models, register_model
from .data import (
    LMDataLoader,
    LMLoader,
    Numericalize,
    SortedTextLoader,
    TextBlock,
    TextClassifierRecipe,
    TextDataLoaders,
    TextLMRecipe,
    pad_collate,
    register_tokenizer,
    tokenizer_from_spec,
)
from .data import __all__ as _data_all
from .hf import (
    HFLearner,
    HFSequenceClassifier,
    HFTokenizer,
    hf_cache_dir,
    hf_learner,
    hf_sequence_classifier,
    hf_splitter,
    save_pretrained,
)
from .hf import __all__ as _hf_all
from .learner import (
    ENCODER_FORMAT,
    LMLearner,
    ModelResetter,
    RNNRegularizer,
    TextLearner,
    decode_spec_tokens,
    language_model_learner,
    load_vocab_file,
    text_classifier_learner,
)
from .learner import __all__ as _learner_all
from .models import (
    AWD_LSTM,
    EmbeddingDropout,
    LanguageModel,
    LinearDecoder,
    PoolingLinearClassifier,
    RNNDropout,
    SentenceClassifier,
    WeightDropout,
    awd_lstm_clas,
    awd_lstm_clas_config,
    awd_lstm_clas_split,
    awd_lstm_lm,
    awd_lstm_lm_config,
    awd_lstm_lm_split,
    dropout_mask,
    get_language_model,
    get_text_classifier,
    masked_concat_pool,
)
from .models import __all__ as _models_all
from .tokenize import (
    BOS,
    EOS,
    FLD,
    PAD,
    TK_MAJ,
    TK_REP,
    TK_UP,
    TK_WREP,
    UNK,
    SpacyTokenizer,
    SubwordTokenizer,
    Tokenizer,
    WordTokenizer,
    defaults,
    fix_html,
    lowercase,
    read_text_file,
    register_rule,
    replace_all_caps,
    replace_maj,
    replace_rep,
    replace_wrep,
    rm_useless_spaces,
    spec_add_spaces,
    tokenize_df,
    tokenize_folder,
    tokenize_texts,
)
from .tokenize import __all__ as _tok_all

_extra = [
    "URLs",
    "untar_data",
    "Perplexity",
    "accuracy",
    "create_model",
    "list_models",
    "register_model",
    "SpacyTokenizer",
    "get_text_files",
]
__all__ = list(
    dict.fromkeys([*_core_all, *_extra, *_tok_all, *_data_all, *_models_all, *_learner_all, *_hf_all])
)
