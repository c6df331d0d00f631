/* Field numbers of the parts of onnx.proto (onnx/onnx.proto, IR version 8) that herd
 * reads and writes, shared by the exporter and the importer. */
#ifndef HERD_IO_ONNX_PROTO_H
#define HERD_IO_ONNX_PROTO_H

enum {
    /* ModelProto */
    MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_GRAPH = 7,
    MODEL_OPSET_IMPORT = 8,
    /* OperatorSetIdProto */
    OPSET_DOMAIN = 1, OPSET_VERSION = 2,
    /* GraphProto */
    GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12,
    /* NodeProto */
    NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5, NODE_DOMAIN = 7,
    /* AttributeProto */
    ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_S = 4, ATTR_T = 5, ATTR_FLOATS = 7, ATTR_INTS = 8, ATTR_TYPE = 20,
    ATTR_TYPE_FLOAT = 1, ATTR_TYPE_INT = 2, ATTR_TYPE_STRING = 3, ATTR_TYPE_TENSOR = 4, ATTR_TYPE_FLOATS = 6,
    ATTR_TYPE_INTS = 7,
    /* TensorProto */
    TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_FLOAT_DATA = 4, TENSOR_INT32_DATA = 5, TENSOR_INT64_DATA = 7,
    TENSOR_NAME = 8, TENSOR_RAW_DATA = 9, TENSOR_DOUBLE_DATA = 10, TENSOR_DATA_LOCATION = 14,
    ONNX_FLOAT = 1, ONNX_INT32 = 6, ONNX_INT64 = 7, ONNX_DOUBLE = 11,
    /* ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto, Dimension */
    VI_NAME = 1, VI_TYPE = 2, TYPE_TENSOR = 1, TTENSOR_ELEM_TYPE = 1, TTENSOR_SHAPE = 2, SHAPE_DIM = 1,
    DIM_VALUE = 1, DIM_PARAM = 2
};

#endif
